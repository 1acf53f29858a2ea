"""Bulk loads: expiry follows snapshot versions, and a failed load leaves the last good values serving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from ma_ray.palette.materialize import load_snapshot
from ma_ray.palette.online import OnlineTable, now_us
from ma_ray.palette.online.sqlite import SqliteOnlineStore
from ma_ray.palette.types import FeatureType

TABLE = OnlineTable("t", "daily", FeatureType.STRING, {"trips": FeatureType.INT}, ttl_s=86_400)
DAY0 = datetime(2026, 1, 1, tzinfo=UTC)


def snapshot(day: int, trips: int, keys: tuple[str, ...] = ("d1", "d2")) -> pa.Table:
    stamp = DAY0 + timedelta(days=day)
    return pa.table(
        {
            "driver_id": list(keys),
            "trips": [trips] * len(keys),
            "feature_timestamp": pa.array([stamp] * len(keys), pa.timestamp("us", "UTC")),
        }
    )


def us(day: int) -> int:
    return int((DAY0 + timedelta(days=day)).timestamp() * 1_000_000)


class FailingStore(SqliteOnlineStore):
    def put(self, table: OnlineTable, rows: list) -> None:
        raise ConnectionError("cassandra went away mid-load")


def test_versions_outside_the_ttl_of_the_newest_load_are_pruned(tmp_path: Path) -> None:
    store = SqliteOnlineStore(tmp_path / "o.sqlite")
    for day in range(4):
        load_snapshot(snapshot(day, day), TABLE, store, "driver_id")
    assert store.get(TABLE, ["d1"], ["trips"], us(3))[0].values == {"trips": 3}
    assert store.get(TABLE, ["d1"], ["trips"], us(2))[0].values == {"trips": 2}  # within one TTL of day 3
    assert not store.get(TABLE, ["d1"], ["trips"], us(1))[0].found  # superseded beyond the TTL: pruned


def test_a_failed_load_prunes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    load_snapshot(snapshot(0, 7), TABLE, SqliteOnlineStore(path), "driver_id")
    with pytest.raises(ConnectionError):
        load_snapshot(snapshot(30, 8), TABLE, FailingStore(path), "driver_id")
    answer = SqliteOnlineStore(path).get(TABLE, ["d1"], ["trips"], now_us())[0]
    assert answer.values == {"trips": 7}  # a month old, still served (and reported stale by the resolver)
