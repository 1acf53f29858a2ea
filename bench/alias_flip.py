"""Alias flips under load (issue 8): deployments through the rollout flow (lock, shadow load on every pool
replica, atomic flip, wait for every ingress) while clients predict without pause over HTTP.

Figures: failed requests during the flips (target: zero); how long after each flip any request still resolved
the previous version, over all ingresses (target: under 1 s; the window ends when the last ingress has
switched); the rollout's own acknowledgement-based propagation time; request latency while flipping against
the steady state measured in the same run before the first flip (the baseline).

Run alone: `python bench/alias_flip.py [--flips 10] [--clients 8]` (embedded defaults, local Ray on 2 CPUs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass

import aiohttp
import numpy as np
import ray
from _harness import Result, Target, report
from prediction_http import FEATURES, TRANSFORMS, _free_port, prepare
from ray import serve

from apps.prediction import build_app
from ma_ray.config import load_settings
from ma_ray.gallery import Gallery, InputSignature
from ma_ray.serving import Rollout, RolloutReport, ServePool

REPLICAS = 2


@dataclass(frozen=True)
class Answer:
    sent: float  # wall clock (time.time), comparable with Gallery's alias event times on this machine
    latency_ms: float
    status: int
    version: int | None


class Load(threading.Thread):
    """``clients`` concurrent HTTP clients in one event loop, until stopped; every answer."""

    def __init__(self, url: str, body: dict, clients: int) -> None:
        super().__init__(daemon=True)
        self.url, self.payload, self.clients = url, json.dumps(body), clients
        self.answers: list[Answer] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.clients), headers=headers) as s:
            await asyncio.gather(*(self._client(s) for _ in range(self.clients)))

    async def _client(self, session: aiohttp.ClientSession) -> None:
        while not self.stopping.is_set():
            sent, started = time.time(), time.perf_counter()
            try:
                async with session.post(self.url, data=self.payload) as response:
                    body = await response.json() if response.status == 200 else {}
                    status = response.status
            except aiohttp.ClientError:
                body, status = {}, 0
            self.answers.append(Answer(sent, (time.perf_counter() - started) * 1000, status, body.get("version")))

    def stop(self) -> list[Answer]:
        self.stopping.set()
        self.join(timeout=60)
        return self.answers


def flip_time(gallery: Gallery, report: RolloutReport) -> float:
    event = next(
        e for e in reversed(gallery.alias_history(report.model, "production")) if e.reason == report.deployment_id
    )
    return event.at.timestamp()


def stale_window_ms(answers: list[Answer], flips: list[tuple[float, float, int]]) -> list[float]:
    """Per flip (deployment started, alias moved, previous version): how long after the move a request was
    still answered by the previous version, up to the start of the next deployment."""
    windows = []
    for index, (_, at, old) in enumerate(flips):
        until = flips[index + 1][0] if index + 1 < len(flips) else float("inf")
        stale = [a.sent - at for a in answers if at <= a.sent < until and a.version == old]
        windows.append(max(stale, default=0.0) * 1000)
    return windows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flips", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--steady-s", type=float, default=5.0, help="load before the first flip (the baseline)")
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as state:
        overrides, driver = prepare(state)
        gallery = Gallery.from_settings(load_settings(**overrides))
        import xgboost as xgb

        x = np.random.default_rng(1).random((512, 10))
        booster = xgb.train({"max_depth": 4, "nthread": 1}, xgb.DMatrix(x, label=x.sum(axis=1)), num_boost_round=20)
        gallery.log_model("eta", booster, signature=InputSignature(features=FEATURES, transforms=TRANSFORMS))
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serving = {"replicas": {"ModelPoolTier1": REPLICAS}}
        serve.run(build_app({"settings": overrides, "serving": serving}), name="prediction", route_prefix="/")
        rollout = Rollout(gallery, ServePool(gallery, "prediction"))
        body = {"rows": [{"driver_id": driver, "request_ts": "2026-01-07T08:30:00+00:00"}]}
        load = Load(f"http://127.0.0.1:{port}/v1/models/eta:predict", body, args.clients)
        load.start()
        time.sleep(args.steady_s)
        steady_until = time.time()
        reports, flips = [], []
        for flip in range(args.flips):
            started = time.time()
            report_ = rollout.deploy("eta", 2 - flip % 2)  # 1 -> 2 -> 1 -> ...
            reports.append(report_)
            flips.append((started, flip_time(gallery, report_), report_.previous_version))
            time.sleep(1.5)
        answers = load.stop()
        serve.shutdown()
        gallery.close()
    ray.shutdown()
    _report(answers, steady_until, flips, reports, args.clients)


def _report(
    answers: list[Answer],
    steady_until: float,
    flips: list[tuple[float, float, int]],
    reports: list[RolloutReport],
    clients: int,
) -> None:
    steady = np.array([a.latency_ms for a in answers if a.sent < steady_until and a.status == 200])
    flipping = np.array([a.latency_ms for a in answers if a.sent >= steady_until and a.status == 200])
    failed = sum(a.status != 200 for a in answers if a.sent >= steady_until)
    windows = stale_window_ms(answers, flips)
    propagation = [r.propagation_s * 1000 for r in reports]
    results = [
        Result(
            f"failed requests during {len(flips)} alias flips ({clients} clients, "
            f"{sum(a.sent >= steady_until for a in answers)} requests)",
            float(failed),
            "requests",
            target=Target("value", "<=", 0),
        ),
        Result(
            "old version still served after the flip, worst over all ingresses and flips",
            max(windows),
            "ms",
            target=Target("value", "<", 1000),
        ),
        Result("old version still served after the flip, p50 over flips", float(np.percentile(windows, 50)), "ms"),
        Result("every ingress acknowledged the flip (rollout's wait), max", max(propagation), "ms"),
        Result(
            "shadow load on every pool replica, first deployment of each version",
            max(r.load_s for r in reports[:2]) * 1000,
            "ms",
        ),
        Result(
            "whole deployment (lock .. every ingress switched), p50",
            float(np.median([r.total_s for r in reports]) * 1000),
            "ms",
        ),
        Result(
            "request p99 while flipping vs steady state before",
            float(np.percentile(flipping, 99)),
            "ms",
            baseline=float(np.percentile(steady, 99)),
        ),
        Result(
            "request p50 while flipping vs steady state before",
            float(np.percentile(flipping, 50)),
            "ms",
            baseline=float(np.percentile(steady, 50)),
        ),
    ]
    report(
        "alias_flip",
        results,
        (
            f"{REPLICAS} tier-1 replicas taking HTTP on a 2-CPU local Ray; the flips alternate "
            "versions 1 and 2 through Rollout.deploy (apps/deploy.py's flow). The stale window is measured by the "
            "clients: send time of the last answer from the previous version minus the alias event's time. The "
            f"machine was shared with other jobs during the run (1-minute load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores at its end)."
        ),
    )


if __name__ == "__main__":
    main()
