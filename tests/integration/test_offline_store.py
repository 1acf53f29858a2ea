"""The offline store on a local filesystem: publish, immutability, reads, retention and crash leftovers."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pytest

from ma_ray.palette.offline import OfflineStore, SnapshotError
from ma_ray.palette.offline.store import STAGING

UTC = pa.timestamp("us", tz="UTC")
DAY = dt.date(2024, 3, 1)


def table(rows: int = 5, offset: int = 0) -> pa.Table:
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    return pa.table(
        {
            "driver_id": [f"drv_{i}" for i in range(rows)],
            "feature_timestamp": pa.array([start + dt.timedelta(minutes=i) for i in range(rows)], UTC),
            "trips_7d": pa.array([i + offset for i in range(rows)], pa.int64()),
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> OfflineStore:
    return OfflineStore(str(tmp_path / "offline"))


def test_write_then_read_with_layout_and_manifest(store: OfflineStore, tmp_path: Path) -> None:
    info = store.write_snapshot("rides", "driver_stats", DAY, table(), "driver_id")
    folder = tmp_path / "offline" / "rides" / "driver_stats" / "snapshot_date=2024-03-01"
    assert Path(info.path) == folder and info.rows == 5 and info.snapshot_date == DAY
    assert sorted(p.name for p in folder.iterdir()) == ["_manifest.json", "part-00000.parquet"]
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["rows"] == 5 and manifest["files"] == ["part-00000.parquet"]
    assert [c["name"] for c in manifest["columns"]] == ["driver_id", "feature_timestamp", "trips_7d"]
    assert len(manifest["content_sha256"]) == 64 and manifest["created_at"]
    assert store.read("rides", "driver_stats").equals(table())
    assert store.read("rides", "driver_stats", DAY, columns=["trips_7d"]).column_names == ["trips_7d"]
    assert store.dataset("rides", "driver_stats").count_rows() == 5
    assert not list((tmp_path / "offline" / STAGING).iterdir())


def test_large_snapshots_are_split_into_parts(store: OfflineStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ma_ray.palette.offline.store.ROWS_PER_FILE", 2)
    info = store.write_snapshot("rides", "driver_stats", DAY, table(5), "driver_id")
    assert [Path(f).name for f in info.files] == [f"part-0000{i}.parquet" for i in range(3)]
    assert store.read("rides", "driver_stats").equals(table(5))


def test_snapshots_are_immutable(store: OfflineStore) -> None:
    first = store.write_snapshot("rides", "driver_stats", DAY, table(), "driver_id")
    rechunked = pa.concat_tables([table().slice(0, 2), table().slice(2)])
    assert store.write_snapshot("rides", "driver_stats", DAY, rechunked, "driver_id") == first
    with pytest.raises(SnapshotError, match="already exists with different content"):
        store.write_snapshot("rides", "driver_stats", DAY, table(offset=1), "driver_id")
    assert store.read("rides", "driver_stats").equals(table())


def test_listing_latest_and_missing_snapshots(store: OfflineStore) -> None:
    assert store.snapshots("rides", "driver_stats") == [] and store.latest("rides", "driver_stats") is None
    with pytest.raises(SnapshotError, match="no snapshot yet"):
        store.read("rides", "driver_stats")
    for offset in (2, 0, 1):  # written out of order, listed by date
        store.write_snapshot(
            "rides", "driver_stats", DAY + dt.timedelta(days=offset), table(offset=offset), "driver_id"
        )
    dates = [s.snapshot_date for s in store.snapshots("rides", "driver_stats")]
    assert dates == [DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)]
    assert store.latest("rides", "driver_stats").snapshot_date == DAY + dt.timedelta(days=2)
    assert store.read("rides", "driver_stats").equals(table(offset=2))
    with pytest.raises(SnapshotError, match="no snapshot of 2023-01-01; it has: 2024-03-01, 2024-03-02"):
        store.read("rides", "driver_stats", dt.date(2023, 1, 1))


def test_invalid_tables_and_names_are_refused(store: OfflineStore) -> None:
    cases = [
        (table().drop_columns(["feature_timestamp"]), "lacks column 'feature_timestamp'"),
        (table().drop_columns(["driver_id"]), "lacks column 'driver_id'"),
        (table().set_column(1, "feature_timestamp", table()["feature_timestamp"].cast(pa.timestamp("ms", "UTC"))),
         "'feature_timestamp' must be timestamp\\[us, tz=UTC\\]"),
        (table().set_column(0, "driver_id", pa.array(["a", None, "c", "d", "e"])), "'driver_id' has 1 null"),
        (table().drop_columns(["trips_7d"]), "no feature columns"),
    ]  # fmt: skip
    for bad, message in cases:
        with pytest.raises(SnapshotError, match=message):
            store.write_snapshot("rides", "driver_stats", DAY, bad, "driver_id")
    with pytest.raises(ValueError, match=r"group name '\.\./x' must match"):
        store.write_snapshot("rides", "../x", DAY, table(), "driver_id")
    assert store.snapshots("rides", "driver_stats") == []


def test_retention_keeps_the_newest_and_never_the_latest(store: OfflineStore) -> None:
    days = [DAY + dt.timedelta(days=i) for i in range(5)]
    for day in days:
        store.write_snapshot("rides", "driver_stats", day, table(), "driver_id")
    deleted = store.apply_retention("rides", "driver_stats", keep_last=3)
    assert [s.snapshot_date for s in deleted] == days[:2]
    assert [s.snapshot_date for s in store.snapshots("rides", "driver_stats")] == days[2:]
    assert not Path(deleted[0].path).exists()
    # Every snapshot is too old, but the latest survives: a failed load must leave the last good one.
    deleted = store.apply_retention(
        "rides", "driver_stats", keep_last=10, max_age_days=30, today=DAY.replace(year=2025)
    )
    assert [s.snapshot_date for s in deleted] == days[2:4]
    assert [s.snapshot_date for s in store.snapshots("rides", "driver_stats")] == [days[4]]
    with pytest.raises(ValueError, match="keep_last must be >= 1"):
        store.apply_retention("rides", "driver_stats", keep_last=0)


def test_max_age_boundary(store: OfflineStore) -> None:
    for i in range(3):
        store.write_snapshot("rides", "driver_stats", DAY + dt.timedelta(days=i), table(), "driver_id")
    today = DAY + dt.timedelta(days=8)
    deleted = store.apply_retention("rides", "driver_stats", keep_last=10, max_age_days=7, today=today)
    assert [s.snapshot_date for s in deleted] == [DAY]  # 8 days old goes, 7 days old stays


def test_crash_leftovers_are_invisible_and_cleaned(store: OfflineStore, tmp_path: Path) -> None:
    root = tmp_path / "offline"
    store.write_snapshot("rides", "driver_stats", DAY, table(), "driver_id")
    crashed = root / STAGING / "rides.driver_stats.2024-03-02.dead"
    crashed.mkdir(parents=True)
    (crashed / "part-00000.parquet").write_bytes(b"half a file")
    half_published = root / "rides" / "driver_stats" / "snapshot_date=2024-03-03"
    half_published.mkdir()
    (half_published / "part-00000.parquet").write_bytes(b"no manifest yet")
    assert [s.snapshot_date for s in store.snapshots("rides", "driver_stats")] == [DAY]
    assert store.clean_staging() == []  # too young: it could be a write in progress
    old = time.time() - 7200
    os.utime(crashed, (old, old))
    store.apply_retention("rides", "driver_stats", keep_last=5)
    assert not crashed.exists()
    # The next write of the half-published date replaces the leftover.
    store.write_snapshot("rides", "driver_stats", DAY + dt.timedelta(days=2), table(offset=3), "driver_id")
    assert store.read("rides", "driver_stats").equals(table(offset=3))


def test_ray_dataset_reads_the_snapshot(store: OfflineStore, ray_cluster: str) -> None:
    store.write_snapshot("rides", "driver_stats", DAY, table(50), "driver_id")
    rows = store.ray_dataset("rides", "driver_stats", columns=["driver_id", "trips_7d"]).take_all()
    assert sorted(r["trips_7d"] for r in rows) == list(range(50))
    assert set(rows[0]) == {"driver_id", "trips_7d"}
