"""Snapshot content checksums and table validation (no filesystem)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from ma_ray.palette.offline.snapshot import SnapshotError, content_checksum, validate_snapshot_table

UTC = pa.timestamp("us", tz="UTC")


def table(values: list[float | None]) -> pa.Table:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return pa.table(
        {
            "k": [f"k{i}" for i in range(len(values))],
            "feature_timestamp": pa.array([start] * len(values), UTC),
            "v": pa.array(values, pa.float64()),
        }
    )


def test_checksum_ignores_chunking_and_slicing_but_not_values() -> None:
    whole = table([1.0, None, 3.0, 4.0])
    chunked = pa.concat_tables([whole.slice(0, 1), whole.slice(1, 2), whole.slice(3)])
    sliced = table([0.0, 1.0, None, 3.0, 4.0]).slice(1)
    sliced = sliced.set_column(0, "k", pa.array([f"k{i}" for i in range(4)]))
    assert content_checksum(whole) == content_checksum(chunked) == content_checksum(sliced)
    assert content_checksum(whole) != content_checksum(table([1.0, None, 3.0, 5.0]))
    assert content_checksum(whole) != content_checksum(table([1.0, 3.0, None, 4.0]))
    assert content_checksum(whole) != content_checksum(whole.cast(whole.schema.set(2, pa.field("v", pa.float32()))))


def test_checksum_ignores_pandas_metadata() -> None:
    whole = table([1.0, 2.0])
    assert content_checksum(whole) == content_checksum(whole.replace_schema_metadata({"pandas": "{}"}))


def test_validation_accepts_int_and_string_keys() -> None:
    for keyed in (table([1.0]), table([1.0]).set_column(0, "k", pa.array([7], pa.int32()))):
        assert validate_snapshot_table(keyed, "k") is None  # raises SnapshotError when the table is invalid


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (table([1.0]).set_column(0, "k", pa.array([1.5])), "join key column 'k' must be a string or an integer"),
        (table([1.0]).set_column(1, "feature_timestamp", pa.array([1])), "'feature_timestamp' must be timestamp"),
        (table([1.0]).set_column(1, "feature_timestamp", pa.array([None], UTC)), "'feature_timestamp' has 1 null"),
    ],
)
def test_validation_names_the_column(bad: pa.Table, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        validate_snapshot_table(bad, "k")
