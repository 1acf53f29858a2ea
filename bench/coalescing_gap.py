"""The tier-1 replica's gathering gap (`coalesce_gather_gap_s`) against single-row throughput under 16 clients.

One prediction application per gap (cached features, XGBoost with 10 inputs, as `bench/prediction_http.py`)
and a bare multiplexed deployment reading the same body with two replicas, as the tier-1 pool, all behind
Serve's HAProxy ingress: sequential requests to each with the bare deployment in turn (a yield nobody joins must
not show in the p50, nor in the server's routing stage, which holds it), then 16 clients on each in alternating
10 s slices after an untimed slice on each. Each figure is against the bare deployment's in the same run.

Run alone: `python bench/coalescing_gap.py [--gaps-ms 1,20,50,1000] [--seconds 60]` (embedded defaults, local
Ray; no servers).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
import ray
from _harness import Result, free_port, report
from prediction_http import ROUTES, BodyConstant, interleaved, prepare, throughput
from ray import serve

from apps.prediction import ServingOptions, build_app

WINDOW_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gaps-ms", default="1,20,50,1000", help="comma-separated gaps, in milliseconds")
    parser.add_argument("--seconds", type=float, default=60.0, help="load time per endpoint, 16 clients")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per endpoint")
    args = parser.parse_args()
    gaps_s = [float(g) / 1000 for g in args.gaps_ms.split(",")]
    default_s = ServingOptions().coalesce_gather_gap_s
    os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
    ray.init(num_cpus=2 + 2 * len(gaps_s), include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as state:
        overrides, drivers = prepare(state, "sqlite")
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        base, urls = f"http://127.0.0.1:{port}", {}
        for i, gap_s in enumerate(gaps_s):
            app = build_app({"settings": overrides, "serving": {"coalesce_gather_gap_s": gap_s}})
            serve.run(app, name=f"gap{i}", route_prefix=f"/gap{i}")
            urls[gap_s] = f"{base}/gap{i}/{ROUTES['predict']}"
        serve.run(BodyConstant.options(num_replicas=2).bind(), name="body", route_prefix="/body")
        urls["body"] = f"{base}/body"
        named = {str(name): url for name, url in urls.items()}
        bodies = [{"rows": [{"driver_id": drivers[0], "request_ts": "2026-01-07T08:30:00+00:00"}]}]
        sequential = {}  # gap -> (its p50, bare's p50 in the same loop, its routing stage's p50), ms
        for gap_s in gaps_s:
            pair = {"predict": urls[gap_s], "body": urls["body"]}
            interleaved(pair, bodies, 50)
            lat, stages = interleaved(pair, bodies, args.requests)
            p50s = [float(np.percentile(ms, 50)) for ms in (lat["predict"], lat["body"], stages["routing"])]
            sequential[gap_s] = p50s
        qps = throughput(named, bodies, args.seconds, rounds=max(1, round(args.seconds / WINDOW_S)))
        serve.shutdown()
    ray.shutdown()
    results = []
    for gap_s in gaps_s:
        label = f"gap {gap_s * 1000:g} ms{' (the default)' if gap_s == default_s else ''}"
        results.append(
            Result(
                f"throughput, 16 clients, single-row, {label}, vs the bare multiplexed deployment (2 replicas)",
                qps[str(gap_s)][0],
                "predictions/s",
                baseline=qps["body"][0],
            )
        )
        predict_ms, bare_ms, routing_ms = sequential[gap_s]
        results.append(Result(f"sequential p50, {label}, vs the bare's in the same loop", predict_ms, "ms", bare_ms))
        results.append(Result(f"server routing stage p50, sequential, {label}", routing_ms, "ms"))
    failed = sum(f for _, f in qps.values())
    results.append(Result("failed requests under 16 clients", failed, "requests"))
    report(
        "coalescing_gap",
        results,
        "A request within the gap of the previous one yields the event loop before its call so that requests the "
        "replica already received share it. Between two arrivals on a replica with a backlog lies one request's own "
        "handling, close to a millisecond on a shared 2-core box and longer when the OS deschedules the replica, so a "
        "short gap judges most requests under load quiet and sends them alone.",
    )


if __name__ == "__main__":
    main()
