"""Why a replica predicts on one XGBoost thread: a single-row ``inplace_predict`` on XGBoost's default thread
count (every core) against ``nthread`` = 1, on a quiet machine and with one busy process beside it (what a
replica meets on a node: other replicas, the proxy, the load). A diagnosis figure for `XGBoostServing.load`; the
prediction service's own figures are in `bench/prediction_http.py`.

The model has the prediction bench's shape: 10 inputs, 100 trees of depth 6. Variants are timed in alternation.
Run alone: `python bench/xgboost_predict_threads.py [--calls 3000]`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from _harness import Result, interleaved_latencies_us, percentiles_vs, report

from ma_ray.serving import PREDICT_THREADS


def boosters() -> tuple[object, object, np.ndarray]:
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.random((5000, 10))
    default = xgb.train({"max_depth": 6}, xgb.DMatrix(x, label=x.sum(axis=1)), num_boost_round=100)
    single = default.copy()
    single.set_param({"nthread": PREDICT_THREADS})
    return default, single, x[:1].copy()


def figures(label: str, calls: int) -> list[Result]:
    default, single, row = boosters()
    samples = interleaved_latencies_us(
        {"default": lambda: default.inplace_predict(row), "single": lambda: single.inplace_predict(row)}, calls
    )
    return percentiles_vs(
        lambda q: f"{label}: single-row inplace_predict p{q}, {PREDICT_THREADS} thread vs XGBoost's default threads",
        samples["single"],
        samples["default"],
    )


def main() -> Path:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    results = figures("quiet", args.calls)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        results += figures("one busy process beside it", args.calls)
    finally:
        busy.kill()
        busy.wait()
    return report("xgboost_predict_threads", results, notes=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
