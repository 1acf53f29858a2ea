"""What an XGBoost prediction costs a replica per call: the walk of the trees (`XGBoostTrees`, used up to
``MAX_STEPS`` rows x trees x depth; a Python loop up to ``PYTHON_WALK_STEPS``, numpy gathers past it) against
``Booster.inplace_predict`` on one thread (what it replaced), at 1, 16, 64 and 256 rows, for the prediction bench's
model (10 inputs, 20 trees of depth 4) and a larger one (100 trees of depth 6). A diagnosis figure for
`XGBoostServing.load` and ``MAX_STEPS``; the call a user makes is timed in `bench/prediction_http.py`. The two are
timed in alternation; both answers are checked equal first. Run alone: `python bench/xgboost_predict.py
[--calls 3000]`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _harness import Result, interleaved_latencies_us, percentiles_vs, report

from ma_ray.serving import PREDICT_THREADS, XGBoostTrees

MODELS = {"20 trees of depth 4": (4, 20), "100 trees of depth 6": (6, 100)}
ROWS = (1, 16, 64, 256)


def booster(depth: int, rounds: int) -> object:
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.random((5000, 10))
    trained = xgb.train({"max_depth": depth, "nthread": 1}, xgb.DMatrix(x, label=x.sum(axis=1)), rounds)
    trained.set_param({"nthread": PREDICT_THREADS})
    return trained


def figures(model: str, depth: int, rounds: int, calls: int) -> list[Result]:
    trained = booster(depth, rounds)
    trees = XGBoostTrees.of(trained)
    assert trees is not None, "the walk should reproduce a plain regression booster"
    rng = np.random.default_rng(1)
    results = []
    for rows in ROWS:
        matrix = rng.random((rows, 10))
        assert np.array_equal(trees.predict(matrix), trained.inplace_predict(matrix))  # type: ignore[attr-defined]
        samples = interleaved_latencies_us(
            {
                "walk": lambda m=matrix: trees.predict(m),
                "xgboost": lambda m=matrix: trained.inplace_predict(m),  # type: ignore[attr-defined]
            },
            calls,
        )
        used = "used" if trees.walks(matrix) else "not used: XGBoost's predictor serves"
        results += percentiles_vs(
            lambda q, r=rows, u=used: f"{model}, {r} row(s): walk p{q} vs inplace_predict ({u})",
            samples["walk"],
            samples["xgboost"],
        )
    return results


def main() -> Path:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    results = [r for model, (depth, rounds) in MODELS.items() for r in figures(model, depth, rounds, args.calls)]
    return report("xgboost_predict", results, notes=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
