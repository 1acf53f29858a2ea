"""The demo's deployment stages: serve the prediction application and deploy the trained model through the
rollout flow (lock, shadow load on every pool replica, atomic alias flip, every ingress switched); then predict
over HTTP as a client would and print the per-stage latency table the service measured (``X-MA-Timing``).

`stage_deploy` leaves the application running for `stage_predict_http`, which shuts Serve down.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

import numpy as np
import requests
from ray import serve

from apps.demo_models import MODEL
from apps.prediction import build_app
from ma_ray.gallery import Gallery
from ma_ray.serving import TIMING_HEADER, Rollout, RolloutReport, ServePool, decode_timing
from ma_ray.text_table import format_table

if TYPE_CHECKING:
    from apps.demo import DemoContext

APP = "prediction"
LATENCY_REQUESTS = 200


def stage_deploy(ctx: DemoContext) -> None:
    """Start the prediction application and deploy the latest version of the trained model as production."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # One access-log line per request would bury the demo's output (and a job's log) under stage 8's requests.
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"enable_access_log": False})
    gallery = Gallery.from_settings(ctx.settings)
    try:
        serve.run(build_app({"settings": ctx.settings.model_dump()}), name=APP, route_prefix="/")
        rollout = Rollout(gallery, ServePool(gallery, APP))
        report = rollout.deploy(MODEL, "latest", "production")
        _print_rollout(report, rollout)
    except BaseException:
        serve.shutdown()  # the predict stage will not run to shut it down
        raise
    finally:
        gallery.close()
    ctx.facts["deployment"] = report.to_dict()
    ctx.facts["prediction_url"] = f"http://127.0.0.1:{port}/v1/models/{{model}}:predict"


def stage_predict_http(ctx: DemoContext) -> None:
    """Ask the deployed model over HTTP as a client would; print the predictions and the latency table."""
    url = ctx.facts["prediction_url"].format(model=MODEL)
    request_ts = f"{ctx.facts['as_of']}T08:30:00+00:00"
    drivers = ctx.facts["hot_drivers"]
    distances = [2.0 + 4.0 * i for i in range(len(drivers))]  # short to long routes
    rows = [
        {"driver_id": d, "request_ts": request_ts, "distance_km": km} for d, km in zip(drivers, distances, strict=True)
    ]
    try:
        answer = requests.post(url, json={"rows": rows}, timeout=60).json()
        print(
            format_table(
                [
                    (r["driver_id"], r["distance_km"], round(p, 1))
                    for r, p in zip(rows, answer["predictions"], strict=True)
                ],
                ["driver", "route km", f"predicted minutes ({MODEL}:{answer['version']})"],
            )
        )
        ctx.facts["predictions"] = [round(p, 3) for p in answer["predictions"]]
        ctx.facts["latency_ms"] = _print_latency(url, rows[0])
    finally:
        serve.shutdown()
    print(
        f"(served at {ctx.facts['prediction_url']}; deploy another version with `python -m apps.deploy`; the Ray "
        "dashboard shows the deployments and the ray_ma_ray_* metrics)"
    )


def _print_rollout(report: RolloutReport, rollout: Rollout) -> None:
    print(
        f"deployed {report.model_id} as production (was {report.previous_version}): shadow-loaded on "
        f"{len(report.replicas)} pool replica(s) in {report.load_s * 1000:.0f} ms, alias flipped, "
        f"{len(report.acknowledged)} ingress(es) switched in {report.propagation_s * 1000:.0f} ms"
    )
    history = rollout.deployer.history(report.model, limit=5)
    print(
        format_table(
            [(d.deployment_id, d.version, d.previous_version, d.status.value, d.reason or "") for d in history],
            ["deployment", "version", "previous", "status", "reason"],
        )
    )


def _print_latency(url: str, row: dict, count: int = LATENCY_REQUESTS) -> dict[str, dict[str, float]]:
    """Single-row predictions; each answer's X-MA-Timing stages and the client's total, p50/p95/p99 in ms."""
    session = requests.Session()
    stages: dict[str, list[float]] = {}
    for _ in range(count):
        started = time.perf_counter()
        response = session.post(url, json={"rows": [row]}, headers={TIMING_HEADER: "1"}, timeout=60)
        total = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        for stage, ms in {**decode_timing(response.headers[TIMING_HEADER]), "total over HTTP": total}.items():
            stages.setdefault(stage, []).append(ms)
    table = [(stage, len(v), *np.percentile(v, [50, 95, 99]).round(3)) for stage, v in stages.items()]
    print(f"latency of {count} single-row predictions, per stage as the service measured it (ms):")
    print(format_table(table, ["stage", "requests", "p50", "p95", "p99"]))
    return {stage: {"p50": float(p50), "p95": float(p95), "p99": float(p99)} for stage, _, p50, p95, p99 in table}
