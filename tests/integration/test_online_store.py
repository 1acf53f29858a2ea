"""The online store protocol's behaviour, on every backend: SQLite, real Cassandra, and both tiered read paths
(L1 -> SQLite embedded; L1 -> real Redis -> real Cassandra in production)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ma_ray.config import Settings
from ma_ray.connections import redis_client
from ma_ray.palette.online import (
    EntityRow,
    InProcessCache,
    OnlineStore,
    OnlineTable,
    RedisCache,
    TieredOnlineStore,
    UnknownFeatureError,
    now_us,
)
from ma_ray.palette.online.cassandra import CassandraOnlineStore
from ma_ray.palette.online.sqlite import SqliteOnlineStore
from ma_ray.palette.types import FeatureType

FEATURES = {
    "trip_count_7d": FeatureType.INT,
    "rating_avg": FeatureType.FLOAT,
    "is_active": FeatureType.BOOL,
    "city": FeatureType.STRING,
    "last_trip_at": FeatureType.TIMESTAMP,
}
T0 = now_us() - 3_600_000_000  # an hour ago, so every write is "in the past" of a read at now


def make_table(key_type: FeatureType = FeatureType.STRING) -> OnlineTable:
    return OnlineTable("test", f"g_{uuid.uuid4().hex[:10]}", key_type, dict(FEATURES), 604_800)


def row(key: object, ts: int, **values: object) -> EntityRow:
    return EntityRow(key, ts, values)


@pytest.fixture(scope="module")
def fast_settings(services: Settings) -> Settings:
    # A loaded 2-core test machine needs more than the 100 ms serving timeout.
    return services.replaced(cassandra_request_timeout_s=5.0)


@pytest.fixture(params=["sqlite", "cassandra", "tiered-embedded", "tiered-production"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    kind = request.param
    keyspace = f"test_online_{uuid.uuid4().hex[:8]}"
    built: OnlineStore
    if kind == "sqlite":
        built = SqliteOnlineStore(tmp_path / "online.sqlite")
    elif kind == "tiered-embedded":
        built = TieredOnlineStore(SqliteOnlineStore(tmp_path / "online.sqlite"), [InProcessCache()])
    else:
        settings = request.getfixturevalue("fast_settings")
        cassandra = CassandraOnlineStore(settings, keyspace=keyspace)
        built = (
            cassandra
            if kind == "cassandra"
            else TieredOnlineStore(cassandra, [InProcessCache(), RedisCache(redis_client(settings), prefix=keyspace)])
        )
    yield built
    if kind in ("cassandra", "tiered-production"):
        (built if kind == "cassandra" else built.primary).drop_keyspace()
    built.close()


@pytest.fixture
def table(store: OnlineStore) -> OnlineTable:
    created = make_table()
    store.update(created)
    return created


def test_newest_row_at_or_before_read_ts(store: OnlineStore, table: OnlineTable) -> None:
    store.put(table, [row("d1", T0, trip_count_7d=3), row("d1", T0 + 10, trip_count_7d=5)])
    store.put(table, [row("d1", T0 + 20, trip_count_7d=8)])
    (latest,) = store.get(table, ["d1"], ["trip_count_7d"], now_us())
    assert (latest.feature_ts, latest.values) == (T0 + 20, {"trip_count_7d": 8})
    (middle,) = store.get(table, ["d1"], ["trip_count_7d"], T0 + 15)
    assert (middle.feature_ts, middle.values) == (T0 + 10, {"trip_count_7d": 5})
    (before,) = store.get(table, ["d1"], ["trip_count_7d"], T0 - 1)
    assert not before.found and before.values == {}


def test_writes_are_idempotent_by_key_and_timestamp(store: OnlineStore, table: OnlineTable) -> None:
    for _ in range(3):
        store.put(table, [row("d1", T0, trip_count_7d=3, city="sf")])
    (answer,) = store.get(table, ["d1"], ["trip_count_7d", "city"], now_us())
    assert answer.values == {"trip_count_7d": 3, "city": "sf"}


def test_every_type_and_null_round_trips(store: OnlineStore, table: OnlineTable) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    store.put(
        table,
        [
            row("d1", T0, trip_count_7d=2**40, rating_avg=4.875, is_active=True, city="Zürich", last_trip_at=moment),
            row("d2", T0, trip_count_7d=None, rating_avg=None, is_active=False, city=None, last_trip_at=None),
        ],
    )
    full, nulls = store.get(table, ["d1", "d2"], list(FEATURES), now_us())
    assert full.values == {
        "trip_count_7d": 2**40,
        "rating_avg": 4.875,
        "is_active": True,
        "city": "Zürich",
        "last_trip_at": moment,
    }
    assert nulls.values == {
        "trip_count_7d": None,
        "rating_avg": None,
        "is_active": False,
        "city": None,
        "last_trip_at": None,
    }


def test_batched_reads_keep_order_and_report_misses(store: OnlineStore, table: OnlineTable) -> None:
    store.put(table, [row(f"d{i}", T0 + i, trip_count_7d=i) for i in range(50)])
    keys = ["d7", "missing", "d49", "d7", "d0"]
    answers = store.get(table, keys, ["trip_count_7d"], now_us())
    assert [a.key for a in answers] == keys
    assert [a.values.get("trip_count_7d") for a in answers] == [7, None, 49, 7, 0]
    assert [a.found for a in answers] == [True, False, True, True, True]


def test_an_awaited_read_answers_as_a_blocking_one(store: OnlineStore, table: OnlineTable) -> None:
    store.put(table, [row(f"d{i}", T0 + i, trip_count_7d=i, city=f"c{i}") for i in range(60)])
    read_ts = now_us()
    for keys in (["d7"], ["missing"], ["d7", "missing", "d49", "d7", "d0"], [f"d{i}" for i in range(60)]):
        for features in (["trip_count_7d"], list(FEATURES)):
            awaited = asyncio.run(store.get_async(table, keys, features, read_ts))
            blocking = store.get(table, keys, features, read_ts)
            assert [(a.key, a.feature_ts, a.values) for a in awaited] == [
                (a.key, a.feature_ts, a.values) for a in blocking
            ]
    with pytest.raises(UnknownFeatureError, match="no stored feature"):
        asyncio.run(store.get_async(table, ["d1"], ["nope"], read_ts))


def test_projection_and_unknown_features(store: OnlineStore, table: OnlineTable) -> None:
    store.put(table, [row("d1", T0, trip_count_7d=1, rating_avg=4.0, city="sf")])
    (answer,) = store.get(table, ["d1"], ["city"], now_us())
    assert answer.values == {"city": "sf"}
    with pytest.raises(UnknownFeatureError, match="no stored feature"):
        store.get(table, ["d1"], ["nope"], now_us())


def test_schema_evolution_adds_features(store: OnlineStore, table: OnlineTable) -> None:
    store.put(table, [row("d1", T0, trip_count_7d=1)])
    store.get(table, ["d1"], ["trip_count_7d"], now_us())  # warm any cache with the old schema
    evolved = OnlineTable(
        table.catalog, table.group, table.key_type, {**table.features, "surge": FeatureType.FLOAT}, table.ttl_s
    )
    store.update(evolved)
    (old,) = store.get(evolved, ["d1"], ["trip_count_7d", "surge"], now_us())
    assert old.values == {"trip_count_7d": 1, "surge": None}
    store.put(evolved, [row("d1", T0 + 1, trip_count_7d=2, surge=1.5)])
    (new,) = store.get(evolved, ["d1"], ["surge"], now_us())
    assert new.values == {"surge": 1.5}


def test_integer_keys_and_teardown(store: OnlineStore) -> None:
    table = make_table(FeatureType.INT)
    store.update(table)
    store.put(table, [row(42, T0, city="oakland")])
    (answer,) = store.get(table, [42], ["city"], now_us())
    assert answer.values == {"city": "oakland"}
    store.teardown(table)
    store.update(table)
    (again,) = store.get(table, [42], ["city"], now_us())
    assert not again.found


def test_prune_drops_superseded_versions_of_the_given_keys(store: OnlineStore, table: OnlineTable) -> None:
    store.put(table, [row(k, T0 + ts, trip_count_7d=ts) for k in ("d1", "d2") for ts in (0, 10, 20)])
    store.prune(table, ["d1"], T0 + 15)
    assert store.get(table, ["d1"], ["trip_count_7d"], T0 + 12)[0].found is False  # d1's old versions are gone
    assert store.get(table, ["d1"], ["trip_count_7d"], now_us())[0].values == {"trip_count_7d": 20}
    assert store.get(table, ["d2"], ["trip_count_7d"], T0 + 12)[0].values == {"trip_count_7d": 10}
