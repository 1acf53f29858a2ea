"""What one offline snapshot is: its manifest on disk, its summary for callers, and the checks a table passes.

A snapshot is one feature group's values as of one day: the join key, ``feature_timestamp`` (UTC,
microseconds) and the feature columns. Its ``_manifest.json`` is written last and is what makes it a snapshot.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

FEATURE_TIMESTAMP = "feature_timestamp"
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
MANIFEST = "_manifest.json"
FORMAT_VERSION = 1


class SnapshotError(ValueError):
    """A snapshot cannot be written or read as asked; the message says why and what to do."""


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: str


class Manifest(BaseModel):
    """``_manifest.json``: the snapshot's contents, so readers never list or open Parquet to learn them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int = FORMAT_VERSION
    catalog: str
    group: str
    snapshot_date: dt.date
    join_key: str
    rows: int = Field(ge=0)
    columns: tuple[ColumnSpec, ...]
    files: tuple[str, ...] = Field(description="Parquet file names, relative to the snapshot folder")
    content_sha256: str = Field(description="hash of the table's schema and values; see content_checksum")
    created_at: dt.datetime


@dataclass(frozen=True)
class SnapshotInfo:
    """A published snapshot. ``path`` is its folder and ``files`` its Parquet files, inside the store's filesystem."""

    catalog: str
    group: str
    snapshot_date: dt.date
    path: str
    rows: int
    created_at: dt.datetime
    join_key: str
    files: tuple[str, ...]
    content_sha256: str

    @classmethod
    def of(cls, manifest: Manifest, path: str) -> SnapshotInfo:
        return cls(
            manifest.catalog,
            manifest.group,
            manifest.snapshot_date,
            path,
            manifest.rows,
            manifest.created_at,
            manifest.join_key,
            tuple(f"{path}/{name}" for name in manifest.files),
            manifest.content_sha256,
        )


def validate_snapshot_table(table: pa.Table, join_key: str) -> None:
    """Raise `SnapshotError` naming the column if ``table`` is not a valid snapshot keyed by ``join_key``."""
    for name in (join_key, FEATURE_TIMESTAMP):
        if name not in table.column_names:
            raise SnapshotError(f"snapshot table lacks column '{name}'; it has: {', '.join(table.column_names)}")
    key_type = table.schema.field(join_key).type
    if not (pa.types.is_string(key_type) or pa.types.is_large_string(key_type) or pa.types.is_integer(key_type)):
        raise SnapshotError(f"join key column '{join_key}' must be a string or an integer, not {key_type}")
    ts_type = table.schema.field(FEATURE_TIMESTAMP).type
    if ts_type != TIMESTAMP_TYPE:
        raise SnapshotError(
            f"column '{FEATURE_TIMESTAMP}' must be {TIMESTAMP_TYPE}, not {ts_type}: "
            f"cast it with table[...].cast(pa.timestamp('us', tz='UTC'))"
        )
    for name in (join_key, FEATURE_TIMESTAMP):
        nulls = table[name].null_count
        if nulls:
            raise SnapshotError(f"column '{name}' has {nulls} null(s); every row needs a key and a timestamp")
    if table.num_columns < 3:
        raise SnapshotError(f"snapshot table has no feature columns besides '{join_key}' and '{FEATURE_TIMESTAMP}'")


def content_checksum(table: pa.Table) -> str:
    """SHA-256 of the schema and the values in row order: equal for equal tables however they are chunked."""
    digest = hashlib.sha256(table.schema.remove_metadata().serialize().to_pybytes())
    for column in table.combine_chunks().columns:
        for chunk in column.chunks:
            batch = pa.record_batch([chunk], names=["c"])
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, batch.schema) as writer:
                writer.write_batch(batch)
            digest.update(sink.getvalue())
    return digest.hexdigest()
