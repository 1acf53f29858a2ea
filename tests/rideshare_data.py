"""A small generated rideshare world and the sample catalog loaded into stores, shared by several tests."""

from __future__ import annotations

from datetime import date
from importlib import resources

import pandas as pd

from ma_ray.config import Settings
from ma_ray.datagen import RideshareConfig, write_chunk, write_dimensions
from ma_ray.datagen.rideshare_features import driver_stats
from ma_ray.palette.catalog import FeatureRepository
from ma_ray.palette.materialize import load_snapshot
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.palette.online import OnlineTable, open_online_store
from ma_ray.palette.registry import FeatureRegistry
from ma_ray.palette.repository import load_repository

CONFIG = RideshareConfig(trips=10_000, days=7, seed=3)
AS_OF = date(2026, 1, 7)


def write_raw(root: str) -> str:
    write_dimensions(CONFIG, root)
    for chunk in range(CONFIG.chunks):
        write_chunk(CONFIG, chunk, root)
    return root


def sample_repository() -> FeatureRepository:
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        return load_repository(path)


def load_sample(settings: Settings, raw_uri: str, batch_rows: int = 50) -> pd.DataFrame:
    """Apply the sample catalog and bulk-load driver_stats as of AS_OF; returns the snapshot by driver_id."""
    repo = sample_repository()
    meta = open_meta_store(settings)
    FeatureRegistry(meta).apply(repo)
    meta.close()
    group = next(g for g in repo.groups if g.name == "driver_stats")
    snapshot = driver_stats(raw_uri, AS_OF)
    online = open_online_store(settings)
    report = load_snapshot(snapshot, OnlineTable.of(repo, group), online, "driver_id", batch_rows=batch_rows)
    online.close()
    assert report.rows == snapshot.num_rows
    return snapshot.to_pandas().set_index("driver_id")
