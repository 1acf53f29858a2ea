"""Writes the rideshare world as raw Parquet: the input of the batch feature pipelines.

Layout under a root URI (any `pyarrow.fs` filesystem): ``drivers/``, ``riders/`` (one file each) and
``trips/date=YYYY-MM-DD/`` and ``trip_events/date=YYYY-MM-DD/`` (one file per chunk and date).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ma_ray.datagen.rideshare import RideshareConfig, RideshareGenerator
from ma_ray.storage import filesystem_and_path

RAW_TABLES = ("drivers", "riders", "trips", "trip_events")


@dataclass(frozen=True)
class ChunkSummary:
    chunk: int
    trips: int
    events: int


def write_dimensions(config: RideshareConfig, root_uri: str) -> dict[str, int]:
    """Write the driver and rider tables; returns their row counts."""
    fs, root = filesystem_and_path(root_uri)
    generator = RideshareGenerator(config)
    counts = {}
    for name, table in (("drivers", generator.drivers()), ("riders", generator.riders())):
        fs.create_dir(f"{root}/{name}", recursive=True)
        pq.write_table(table, f"{root}/{name}/part-00000.parquet", filesystem=fs)
        counts[name] = table.num_rows
    return counts


def write_chunk(config: RideshareConfig, chunk: int, root_uri: str) -> ChunkSummary:
    """Generate and write one chunk of trips and their events (idempotent: same file names on a re-run)."""
    fs, root = filesystem_and_path(root_uri)
    generator = RideshareGenerator(config)
    trips = generator.trips(chunk)
    events = generator.trip_events(trips)
    for name, table in (("trips", trips), ("trip_events", events)):
        ds.write_dataset(
            table,
            f"{root}/{name}",
            filesystem=fs,
            format="parquet",
            partitioning=ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive"),
            basename_template=f"chunk-{chunk:05d}-{{i}}.parquet",
            existing_data_behavior="overwrite_or_ignore",
        )
    return ChunkSummary(chunk, trips.num_rows, events.num_rows)


def read_raw(root_uri: str, table: str) -> ds.Dataset:
    """Open one raw table as a dataset (the ``date`` partition comes back as a string column)."""
    if table not in RAW_TABLES:
        raise ValueError(f"unknown raw table {table!r}; expected one of {', '.join(RAW_TABLES)}")
    fs, root = filesystem_and_path(root_uri)
    partitioning = "hive" if table in ("trips", "trip_events") else None
    return ds.dataset(f"{root}/{table}", filesystem=fs, format="parquet", partitioning=partitioning)
