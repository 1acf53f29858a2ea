"""Synthetic rideshare data: the generator (pure, deterministic by seed), its raw event schemas, its raw Parquet
writer, and the reference computation of the demo's driver features straight from the raw files."""

from ma_ray.datagen.raw_parquet import RAW_TABLES, ChunkSummary, read_raw, write_chunk, write_dimensions
from ma_ray.datagen.rideshare import (
    RAW_EVENT_SCHEMAS,
    TRIP_EVENT_SCHEMA,
    RideshareConfig,
    RideshareGenerator,
    driver_id,
    sample_zipf,
    zipf_cdf,
)
from ma_ray.datagen.rideshare_features import driver_stats

__all__ = [
    "RAW_EVENT_SCHEMAS",
    "RAW_TABLES",
    "TRIP_EVENT_SCHEMA",
    "ChunkSummary",
    "RideshareConfig",
    "RideshareGenerator",
    "driver_id",
    "driver_stats",
    "read_raw",
    "sample_zipf",
    "write_chunk",
    "write_dimensions",
    "zipf_cdf",
]
