"""Synthetic rideshare data: the generator (pure, deterministic by seed) and its raw Parquet writer."""

from ma_ray.datagen.raw_parquet import RAW_TABLES, ChunkSummary, read_raw, write_chunk, write_dimensions
from ma_ray.datagen.rideshare import RideshareConfig, RideshareGenerator

__all__ = [
    "RAW_TABLES",
    "ChunkSummary",
    "RideshareConfig",
    "RideshareGenerator",
    "read_raw",
    "write_chunk",
    "write_dimensions",
]
