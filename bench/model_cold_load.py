"""Virtual model sharding under Zipf traffic (issue 8): 500 registered XGBoost models, the tier 2-4 pool on 2
replicas with room for 50 models each, the tier-1 pool on 2 replicas; clients ask for models by Zipf rank over
HTTP, so the hot head stays resident and the tail loads cold and evicts.

Figures: cold-load latency as a request sees it (the pool's ``model_load`` stage on a cache miss) p50/p99,
against plain ``Gallery.load`` of the same kind of model in this process, in the same run (the baseline: fetch,
verify, deserialize, no Serve); the cache hit ratio; evictions per tier from the replicas' caches (tier-1
evictions: target zero; tier 1 is pinned at peak, and the run is configured as all-day peak).

Run alone: `python bench/model_cold_load.py [--models 500] [--requests 6000]` (embedded defaults, local Ray).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import Counter

import aiohttp
import numpy as np
import ray
from _harness import Result, Target, free_port, report
from ray import serve

from apps.prediction import build_app
from ma_ray.config import load_settings
from ma_ray.gallery import Gallery, InputSignature
from ma_ray.palette import FeatureRegistry, load_repository
from ma_ray.palette.meta_store import open_meta_store

SLOTS = 50
REPLICAS = 2
TIER1_MODELS = 20
ZIPF_S = 1.1
# A hit returns the resident model in microseconds; a miss fetches, verifies and deserializes (milliseconds).
COLD_MS = 2.0
SIGNATURE = InputSignature(
    transforms={"hour": "hour(@basis:request_ts)", "peak": "hour(@basis:request_ts) in [7, 8, 9, 17, 18, 19]"}
)


def prepare(state: str, models: int) -> tuple[dict, dict[str, int], int]:
    """The sample catalog (the pools' feature server needs it) and ``models`` tiny XGBoost models; the first
    TIER1_MODELS by Zipf rank are tier 1, the rest tiers 2-4. Returns settings, tier by model, artifact bytes."""
    from importlib import resources

    import xgboost as xgb

    settings = load_settings(state_dir=state)
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        meta = open_meta_store(settings)
        FeatureRegistry(meta).apply(load_repository(path))
        meta.close()
    x = np.random.default_rng(0).random((64, 2))
    booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(x, label=x.sum(axis=1)), num_boost_round=3)
    gallery = Gallery.from_settings(settings)
    tiers, size = {}, 0
    for rank in range(models):
        name = f"m{rank:04d}"
        tiers[name] = 1 if rank < TIER1_MODELS else 2 + rank % 3
        gallery.register_model(name=name, owner="bench", tier=tiers[name], framework="xgboost")
        size = max(size, gallery.log_model(name, booster, signature=SIGNATURE).size_bytes)
        gallery.set_alias(name, "production", 1)
    gallery.close()
    return settings.model_dump(), tiers, size


def baseline_loads_ms(settings: dict, names: list[str]) -> np.ndarray:
    gallery = Gallery.from_settings(load_settings(**settings))
    samples = []
    for name in names:
        started = time.perf_counter()
        gallery.load(name, 1)
        samples.append((time.perf_counter() - started) * 1000)
    gallery.close()
    return np.array(samples)


async def traffic(url: str, names: list[str], clients: int) -> tuple[list[float], int]:
    """Every request's model_load stage (ms), and the failed requests."""
    body = json.dumps({"rows": [{"request_ts": "2026-01-07T08:30:00+00:00"}]})
    queue: asyncio.Queue[str] = asyncio.Queue()
    for name in names:
        queue.put_nowait(name)
    loads: list[float] = []
    failed = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal failed
        while not queue.empty():
            name = queue.get_nowait()
            async with session.post(f"{url}/{name}:predict", data=body) as response:
                if response.status != 200:
                    failed += 1
                    continue
                loads.append((await response.json())["timing_ms"]["model_load"])

    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients), headers=headers) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return loads, failed


def cache_states() -> list[dict]:
    states = []
    for deployment in ("ModelPool", "ModelPoolTier1"):
        handle = serve.get_deployment_handle(deployment, "prediction")
        states += [{**s, "deployment": deployment} for s in handle.broadcast("resident").results(timeout_s=60)]
    return states


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as state:
        started = time.perf_counter()
        overrides, tiers, size = prepare(state, args.models)
        registered_s = time.perf_counter() - started
        names = sorted(tiers)
        ranks = np.random.default_rng(1).zipf(ZIPF_S, size=args.requests * 4)
        sequence = [names[r - 1] for r in ranks if r <= len(names)][: args.requests]
        baseline = baseline_loads_ms(overrides, names[-100:])
        serving = {
            "replicas": {"ModelPool": REPLICAS, "ModelPoolTier1": REPLICAS},
            "cache_budget_mb": SLOTS * size / 1024 / 1024,  # room for SLOTS models of this size
            "grace_period_s": 0.0,  # the seed's 5 minutes outlast this run; eviction order is what is measured
            "peak_hours_utc": list(range(24)),
        }
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app({"settings": overrides, "serving": serving}), name="prediction", route_prefix="/")
        loads, failed = asyncio.run(traffic(f"http://127.0.0.1:{port}/v1/models", sequence, args.clients))
        states = cache_states()
        serve.shutdown()
    ray.shutdown()
    _report(loads, failed, baseline, states, tiers, sequence, registered_s)


def _report(
    loads: list[float],
    failed: int,
    baseline: np.ndarray,
    states: list[dict],
    tiers: dict[str, int],
    sequence: list[str],
    registered_s: float,
) -> None:
    cold = np.array([ms for ms in loads if ms >= COLD_MS])
    evicted = Counter(tiers[model_id.rpartition(":")[0]] for s in states for model_id in s["evictions"])
    results = [
        Result(
            "cold load as a request sees it, p99 (vs Gallery.load in-process)",
            float(np.percentile(cold, 99)) if len(cold) else 0.0,
            "ms",
            baseline=float(np.percentile(baseline, 99)),
            target=Target("value", "<", 200),
        ),
        Result(
            "cold load as a request sees it, p50 (vs Gallery.load in-process)",
            float(np.percentile(cold, 50)) if len(cold) else 0.0,
            "ms",
            baseline=float(np.percentile(baseline, 50)),
        ),
        Result("cache hit ratio (requests served by a resident model)", 1 - len(cold) / max(1, len(loads)), "ratio"),
        Result("tier-1 evictions", float(evicted.get(1, 0)), "models", target=Target("value", "<=", 0)),
        Result("tier 2-4 evictions", float(sum(n for tier, n in evicted.items() if tier != 1)), "evictions"),
        Result("failed requests", float(failed), "requests", target=Target("value", "<=", 0)),
        Result("distinct models requested", float(len(set(sequence))), "models"),
        Result(f"registering {len(tiers)} models (log_model + alias)", registered_s, "s"),
    ]
    report(
        "model_cold_load",
        results,
        (
            f"{len(tiers)} XGBoost models ({TIER1_MODELS} tier 1 at the Zipf head, the rest tiers 2-4), Zipf "
            f"s={ZIPF_S}, {len(sequence)} single-row requests over HTTP; ModelPool and ModelPoolTier1 with "
            f"{REPLICAS} replicas each, a cache budget of {SLOTS} models per replica, grace period 0 (the seed's "
            f"5 minutes outlast the run) and all hours configured as peak. A request counts as cold when its "
            f"model_load stage took >= {COLD_MS} ms (a hit takes microseconds). Evictions are the replicas' own "
            "cache records (PoolReplica.resident). The machine was shared with other jobs during the run (1-minute "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at its end)."
        ),
    )


if __name__ == "__main__":
    main()
