"""End-to-end HTTP predictions of an XGBoost model with 10 inputs served from cache, against a bare Ray Serve
deployment that returns a constant, through the same proxy, in the same run (issue 8's first two figures).

Run alone: `python bench/prediction_http.py` (embedded defaults: SQLite features, local Ray; no servers).
"""

from __future__ import annotations

import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from importlib import resources

import numpy as np
import ray
import requests
from _harness import Result, Target, report
from ray import serve

from apps.prediction import build_app
from ma_ray.config import load_settings
from ma_ray.datagen import RideshareConfig, write_chunk, write_dimensions
from ma_ray.datagen.rideshare_features import driver_stats
from ma_ray.gallery import Gallery, InputSignature
from ma_ray.palette.materialize import load_snapshot
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.palette.online import OnlineTable, open_online_store
from ma_ray.palette.registry import FeatureRegistry
from ma_ray.palette.repository import load_repository

STATS = "@palette:rideshare:driver_stats:{}:driver_id"
FEATURES = tuple(
    STATS.format(f)
    for f in ("trip_count_7d", "rating_avg", "acceptance_rate", "cancellation_rate", "avg_trip_distance")
)
TRANSFORMS = {
    "derived_a": f"log1p({FEATURES[0]})",
    "derived_b": f"{FEATURES[2]} * (1 - {FEATURES[3]})",
    "derived_c": f"clip({FEATURES[1]}, 1, 5)",
    "hour": "hour(@basis:request_ts)",
    "peak": "hour(@basis:request_ts) in [7, 8, 9, 17, 18, 19]",
}
AS_OF = date(2026, 1, 7)


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class Constant:
    async def __call__(self, request: object) -> dict:
        return {"predictions": [1.0]}


def prepare(state: str) -> tuple[dict, str]:
    settings = load_settings(state_dir=state)
    raw = f"{state}/raw"
    config = RideshareConfig(trips=20_000, days=7, seed=5)
    write_dimensions(config, raw)
    for chunk in range(config.chunks):
        write_chunk(config, chunk, raw)
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        repo = load_repository(path)
    meta = open_meta_store(settings)
    FeatureRegistry(meta).apply(repo)
    meta.close()
    snapshot = driver_stats(raw, AS_OF)
    online = open_online_store(settings)
    load_snapshot(snapshot, OnlineTable.of(repo, repo.groups[0]), online, "driver_id")
    online.close()
    import xgboost as xgb

    x = np.random.default_rng(0).random((512, 10))
    booster = xgb.train({"max_depth": 4, "nthread": 1}, xgb.DMatrix(x, label=x.sum(axis=1)), num_boost_round=20)
    gallery = Gallery.from_settings(settings)
    gallery.register_model(name="eta", owner="maps", tier=1, framework="xgboost")
    gallery.log_model("eta", booster, signature=InputSignature(features=FEATURES, transforms=TRANSFORMS))
    gallery.set_alias("eta", "production", 1)
    gallery.close()
    return settings.model_dump(), str(snapshot["driver_id"][0])


def latencies(url: str, body: dict, count: int) -> np.ndarray:
    session = requests.Session()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        session.post(url, json=body, timeout=30).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    return np.array(samples)


def throughput(url: str, body: dict, clients: int = 16, seconds: float = 10.0) -> float:
    def client() -> int:
        session, done, deadline = requests.Session(), 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            session.post(url, json=body, timeout=30).raise_for_status()
            done += 1
        return done

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(lambda _: client(), range(clients))) / seconds


def main() -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as state:
        overrides, driver = prepare(state)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app({"settings": overrides}), name="prediction", route_prefix="/")
        serve.run(Constant.bind(), name="constant", route_prefix="/constant")
        predict_url = f"http://127.0.0.1:{port}/v1/models/eta:predict"
        constant_url = f"http://127.0.0.1:{port}/constant"
        body = {"rows": [{"driver_id": driver, "request_ts": "2026-01-07T08:30:00+00:00"}]}
        latencies(predict_url, body, 100)  # warm-up: model loaded, features cached
        latencies(constant_url, body, 100)
        ours, bare = latencies(predict_url, body, 1000), latencies(constant_url, body, 1000)
        ours_qps, bare_qps = throughput(predict_url, body), throughput(constant_url, body)
        serve.shutdown()
    ray.shutdown()
    report(
        "prediction_http",
        [
            Result(
                "HTTP predict p50 (XGBoost, 10 inputs, features cached)",
                float(np.percentile(ours, 50)),
                "ms",
                baseline=float(np.percentile(bare, 50)),
                target=Target("ratio", "<=", 1.3),
            ),
            Result(
                "HTTP predict p99",
                float(np.percentile(ours, 99)),
                "ms",
                baseline=float(np.percentile(bare, 99)),
                target=Target("value", "<", 15),
            ),
            Result(
                "throughput, 16 concurrent clients",
                ours_qps,
                "predictions/s",
                baseline=bare_qps,
                target=Target("value", ">=", 1000),
            ),
        ],
    )


if __name__ == "__main__":
    main()
