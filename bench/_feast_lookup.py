"""Feast's online lookup on the same data shape as `bench/feature_lookup.py`: run by a Python that has Feast
(`--feast-python`), never by the project's venv. Prints one JSON object: {"<backend> <n> x <width>": p50_us}.

The same 10,000 drivers x 5 / 50 float-and-int features, random drivers per call, in-process
`FeatureStore.get_online_features(...).to_dict()` after warm-up, on Feast's SQLite and Redis online stores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.types import Float64, Int64

WIDTHS = (5, 50)
ENTITIES = (1, 10, 100)


def columns(width: int) -> list[str]:
    return ["trip_count_7d", *(f"rate_{i}" for i in range(4))] if width == 5 else [f"f_{i:02d}" for i in range(50)]


def frame(width: int, drivers: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    data: dict[str, object] = {"driver_id": [f"drv_{i:07d}" for i in range(drivers)]}
    for name in columns(width):
        values = rng.random(drivers)
        data[name] = (values * 300).astype(np.int64) if name == "trip_count_7d" else values
    data["event_timestamp"] = datetime.now(UTC) - timedelta(minutes=1)
    return pd.DataFrame(data)


def feature_store(backend: str, root: Path, redis_url: str) -> FeatureStore:
    online = (
        SqliteOnlineStoreConfig(path=str(root / "online.db"))
        if backend == "sqlite"
        else RedisOnlineStoreConfig(connection_string=redis_url)
    )
    config = RepoConfig(
        project=f"bench_{uuid.uuid4().hex[:8]}",
        registry=str(root / "registry.db"),
        provider="local",
        online_store=online,
        entity_key_serialization_version=3,
    )
    return FeatureStore(config=config)


def run(backend: str, drivers: int, calls: int, redis_url: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = feature_store(backend, root, redis_url)
        driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.STRING)
        views = {}
        for width in WIDTHS:
            data = frame(width, drivers)
            data.to_parquet(root / f"drivers_{width}.parquet")
            source = FileSource(path=str(root / f"drivers_{width}.parquet"), timestamp_field="event_timestamp")
            schema = [Field(name=n, dtype=Int64 if n == "trip_count_7d" else Float64) for n in columns(width)]
            views[width] = FeatureView(
                name=f"drivers_{width}", entities=[driver], schema=schema, source=source, ttl=timedelta(days=7)
            )
            store.apply([driver, views[width]])
            store.write_to_online_store(f"drivers_{width}", data)
        try:
            for width in WIDTHS:
                refs = [f"drivers_{width}:{n}" for n in columns(width)]
                for n in ENTITIES:
                    rng = np.random.default_rng(n * width)
                    sets = [rng.choice(drivers, n, replace=False) for _ in range(calls + 50)]
                    samples = []
                    for i, chosen in enumerate(sets):
                        rows = [{"driver_id": f"drv_{int(k):07d}"} for k in chosen]
                        started = time.perf_counter_ns()
                        store.get_online_features(features=refs, entity_rows=rows).to_dict()
                        if i >= 50:
                            samples.append((time.perf_counter_ns() - started) / 1000)
                    figures[f"{backend} {n} x {width}"] = float(np.percentile(samples, 50))
        finally:
            store.teardown()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drivers", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,redis")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    for backend in args.backends.split(","):
        figures |= run(backend, args.drivers, args.calls, args.redis)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
