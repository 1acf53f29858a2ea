"""The cache layers: read-through fill, write refresh, never older over newer, and a Redis outage bypassed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import msgpack
import pytest

from ma_ray.config import Settings, load_settings
from ma_ray.connections import AsyncRedisReader, redis_client
from ma_ray.palette.online import EntityRow, InProcessCache, OnlineTable, RedisCache, TieredOnlineStore, now_us
from ma_ray.palette.online.cassandra import CassandraOnlineStore
from ma_ray.palette.online.sqlite import SqliteOnlineStore
from ma_ray.palette.types import FeatureType
from tests.polling import wait_for

T0 = now_us() - 60_000_000


def table() -> OnlineTable:
    return OnlineTable(
        "test",
        f"g_{uuid.uuid4().hex[:8]}",
        FeatureType.STRING,
        {"trips": FeatureType.INT, "rating": FeatureType.FLOAT},
        3600,
    )


@pytest.fixture
def l2(services: Settings) -> RedisCache:
    cache = RedisCache(redis_client(services), ttl_s=300, prefix=f"t{uuid.uuid4().hex[:8]}")
    yield cache
    cache.close()


def tiered(tmp_path: Path, *caches: object) -> TieredOnlineStore:
    return TieredOnlineStore(SqliteOnlineStore(tmp_path / "o.sqlite"), list(caches))


def test_read_through_fills_each_tier(tmp_path: Path, l2: RedisCache) -> None:
    l1 = InProcessCache(ttl_s=60)
    store, t = tiered(tmp_path, l1, l2), table()
    store.update(t)
    store.primary.put(t, [EntityRow("d1", T0, {"trips": 4, "rating": 4.5})])  # behind the caches' back
    layers = [store.get(t, ["d1"], ["trips"], now_us())[0].layer for _ in range(2)]
    assert layers == ["sqlite", "l1"]
    l1.invalidate(t, ["d1"])
    (served,) = store.get(t, ["d1"], ["rating"], now_us())
    assert (served.layer, served.values) == ("redis", {"rating": 4.5})
    assert store.served["sqlite"] == 1 and store.served["l1"] == 1 and store.served["redis"] == 1


def test_writes_refresh_caches(tmp_path: Path, l2: RedisCache) -> None:
    store, t = tiered(tmp_path, InProcessCache(ttl_s=60), l2), table()
    store.update(t)
    store.put(t, [EntityRow("d1", T0, {"trips": 1, "rating": 4.0})])
    assert store.get(t, ["d1"], ["trips"], now_us())[0].values == {"trips": 1}
    store.put(t, [EntityRow("d1", T0 + 5, {"trips": 2, "rating": 4.1}), EntityRow("d1", T0 + 1, {"trips": 9})])
    (answer,) = store.get(t, ["d1"], ["trips"], now_us())
    assert (answer.layer, answer.values) == ("l1", {"trips": 2})


def test_caches_never_replace_newer_with_older(l2: RedisCache) -> None:
    t = table()
    for cache in (InProcessCache(ttl_s=60), l2):
        cache.put(t, [EntityRow("d1", T0 + 10, {"trips": 10, "rating": 1.0})])
        cache.put(t, [EntityRow("d1", T0, {"trips": 0, "rating": 0.0})])
        assert cache.get(t, ["d1"], ["trips"], now_us())[0].values == {"trips": 10}
        assert not cache.get(t, ["d1"], ["trips"], T0 + 9)[0].found  # the cached row is newer than read_ts


def test_redis_entries_of_an_older_release_read_as_misses_and_give_way(l2: RedisCache) -> None:
    """Entries written as "<ts>|<msgpack row>" (before entries became one msgpack array) are misses, whatever
    else the same read finds, and any fill or refresh replaces them."""
    t = table()
    old = f"{T0 + 100}|".encode() + msgpack.packb({"trips": 7, "rating": 1.0})
    l2.client.set(f"{l2.prefix}:{t.name}:old", old)
    l2.put(t, [EntityRow("new", T0, {"trips": 1, "rating": 2.0})])
    assert [a.values if a.found else None for a in l2.get(t, ["old", "new"], ["trips"], now_us())] == [
        None,
        {"trips": 1},
    ]
    l2.put(t, [EntityRow("old", T0, {"trips": 3, "rating": 3.0})])  # older than the old entry's ts: still wins
    assert l2.get(t, ["old"], ["trips"], now_us())[0].values == {"trips": 3}
    l2.client.set(f"{l2.prefix}:{t.name}:old", old)
    l2.refresh(t, [EntityRow("old", T0, {"trips": 4, "rating": 4.0})])
    assert l2.get(t, ["old"], ["trips"], now_us())[0].values == {"trips": 4}


def test_a_refresh_of_an_uncached_key_leaves_a_marker_that_refuses_older_fills(l2: RedisCache) -> None:
    t = table()
    l2.refresh(t, [EntityRow("d1", T0 + 10, {"trips": 10, "rating": 1.0})])
    assert not l2.get(t, ["d1"], ["trips"], now_us())[0].found  # a marker is a miss
    l2.put(t, [EntityRow("d1", T0 + 5, {"trips": 5, "rating": 0.5})])  # read before that write: refused
    assert not l2.get(t, ["d1"], ["trips"], now_us())[0].found
    l2.put(t, [EntityRow("d1", T0 + 10, {"trips": 10, "rating": 1.0})])
    assert l2.get(t, ["d1"], ["trips"], now_us())[0].values == {"trips": 10}


def test_historical_reads_do_not_fill_caches(tmp_path: Path) -> None:
    l1 = InProcessCache(ttl_s=60)
    store, t = tiered(tmp_path, l1), table()
    store.update(t)
    store.put(t, [EntityRow("d1", T0, {"trips": 1}), EntityRow("d1", T0 + 5, {"trips": 2})])
    l1.invalidate(t, ["d1"])
    assert store.get(t, ["d1"], ["trips"], T0 + 1)[0].values == {"trips": 1}
    assert len(l1) == 0
    assert store.get(t, ["d1"], ["trips"], now_us())[0].values == {"trips": 2}


def test_an_awaited_primary_read_fills_the_l1_at_once_and_redis_off_its_path(
    services: Settings, l2: RedisCache
) -> None:
    cassandra = CassandraOnlineStore(services.replaced(cassandra_request_timeout_s=5.0), f"t{uuid.uuid4().hex[:8]}")
    l1 = InProcessCache(ttl_s=60)
    store, t = TieredOnlineStore(cassandra, [l1, l2]), table()
    try:
        store.update(t)
        rows = [EntityRow("d1", T0, {"trips": 4, "rating": 4.5}), EntityRow("d2", T0, {"trips": 2, "rating": 1.0})]
        cassandra.put(t, rows)  # behind the caches' back
        got = asyncio.run(store.get_uncached_async(t, ["d1", "nobody"], ["trips"], now_us()))
        assert [(a.layer, a.values) for a in got] == [("cassandra", {"trips": 4}), ("none", {})]
        assert store.served["cassandra"] == 1 and store.served["none"] == 1
        assert l1.hits(t, ["d1"], ["trips", "rating"], now_us())[0].values == {"trips": 4, "rating": 4.5}
        wait_for(lambda: l2.hits(t, ["d1"], ["trips"], now_us())[0] is not None, 10, "Redis was never filled")
        historical = asyncio.run(store.get_uncached_async(t, ["d2"], ["rating"], T0 + 1))
        assert historical[0].values == {"rating": 1.0}
        assert l1.hits(t, ["d2"], ["rating"], now_us()) == [None]  # a historical read fills no cache
    finally:
        cassandra.drop_keyspace()
        store.close()


def test_awaited_cache_reads_answer_as_the_blocking_walk_and_fill_the_l1(tmp_path: Path, services: Settings) -> None:
    """`get_cached_async` walks the caches as `get_cached` does, Redis's MGET awaited: the L1 answers what it holds,
    Redis the rest (filling the L1), and nothing below the caches is read."""
    l1 = InProcessCache(ttl_s=60)
    reader = AsyncRedisReader(services.redis.url, timeout_s=1.0)
    l2 = RedisCache(redis_client(services), prefix=f"t{uuid.uuid4().hex[:8]}", async_reader=reader)
    store, t = tiered(tmp_path, l1, l2), table()
    try:
        store.update(t)
        store.put(t, [EntityRow(d, T0, {"trips": i, "rating": 1.5}) for i, d in enumerate(["d1", "d2"])])
        store.get(t, ["d1", "d2"], ["trips"], now_us())  # the writes left Redis markers: this read fills both
        l1.invalidate(t, ["d2"])
        keys, read_ts = ["d1", "d2", "nobody"], now_us()
        (blocking,) = store.get_cached([(t, keys, ["rating"])], read_ts)
        expected = [(a.layer, a.values) if a else None for a in blocking]
        l1.invalidate(t, ["d2"])
        served_before = store.served.copy()
        (got,) = asyncio.run(store.get_cached_async([(t, keys, ["rating"])], read_ts))
        assert [(a.layer, a.values) if a else None for a in got] == expected
        assert expected == [("l1", {"rating": 1.5}), ("redis", {"rating": 1.5}), None]
        assert store.served - served_before == {"l1": 1, "redis": 1}  # the primary was not asked
        assert l1.hits(t, ["d2"], ["trips"], now_us())[0].values == {"trips": 1}  # filled from Redis
    finally:
        store.close()


def mget_calls(services: Settings) -> int:
    """How many MGETs the Redis server has run (its own command statistics)."""
    stats = redis_client(services).info("commandstats")
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))


@pytest.mark.parametrize("awaited", [False, True], ids=["blocking", "awaited"])
def test_one_mget_answers_the_caches_reads_of_several_tables(tmp_path: Path, services: Settings, awaited: bool) -> None:
    """Several tables' keys (a request's feature groups) cost Redis one MGET, each table answered from its own run of
    the reply, whatever the order and the misses; a table with no key asked adds nothing."""
    reader = AsyncRedisReader(services.redis.url, timeout_s=1.0)
    l2 = RedisCache(redis_client(services), prefix=f"t{uuid.uuid4().hex[:8]}", async_reader=reader)
    store, tables = tiered(tmp_path, l2), [table(), table(), table()]
    try:
        for i, t in enumerate(tables):
            store.update(t)
            l2.put(t, [EntityRow(f"d{i}", T0, {"trips": i, "rating": i / 2})])
        reads = [(tables[0], ["nobody", "d0"], ["trips"]), (tables[1], [], ["trips"]), (tables[2], ["d2"], ["rating"])]
        before = mget_calls(services)
        cached = asyncio.run(store.get_cached_async(reads, now_us())) if awaited else store.get_cached(reads, now_us())
        assert mget_calls(services) - before == 1
        assert [[(a.layer, a.values) if a else None for a in answers] for answers in cached] == [
            [None, ("redis", {"trips": 0})],
            [],
            [("redis", {"rating": 1.0})],
        ]
    finally:
        store.close()


def test_an_awaited_read_of_a_failing_primary_answers_unavailable(tmp_path: Path) -> None:
    class Refusing(SqliteOnlineStore):
        def get(self, *args: object) -> list:  # type: ignore[override]
            raise ConnectionError("refused")

    store, t = TieredOnlineStore(Refusing(tmp_path / "o.sqlite"), [InProcessCache()]), table()
    store.update(t)
    got = asyncio.run(store.get_uncached_async(t, ["d1", "d2"], ["trips"], now_us()))
    assert [a.layer for a in got] == ["unavailable", "unavailable"] and not any(a.found for a in got)
    assert store.errors["sqlite"] == 1 and store.served["unavailable"] == 2


def test_l1_expires_and_stays_bounded() -> None:
    clock = [100.0]
    t, l1 = table(), InProcessCache(ttl_s=0.05, max_entries=3, clock=lambda: clock[0])
    l1.put(t, [EntityRow(f"d{i}", T0, {"trips": i}) for i in range(5)])
    assert len(l1) == 3
    assert [a.found for a in l1.get(t, ["d0", "d4"], ["trips"], now_us())] == [False, True]
    clock[0] += 0.08
    assert not l1.get(t, ["d4"], ["trips"], now_us())[0].found
    with pytest.raises(ValueError, match="ttl_s > 0"):
        InProcessCache(ttl_s=0)


def test_l1_tables_share_the_budget_and_the_largest_gives_way() -> None:
    busy, quiet, l1 = table(), table(), InProcessCache(ttl_s=60, max_entries=4)
    l1.put(busy, [EntityRow(f"d{i}", T0, {"trips": i}) for i in range(4)])
    l1.get(busy, ["d0"], ["trips"], now_us())  # d0 used again: d1 is now the busy table's least recently used
    l1.put(quiet, [EntityRow(f"q{i}", T0, {"trips": i}) for i in range(2)])
    assert len(l1) == 4
    found = [a.found for a in l1.get(busy, ["d0", "d1", "d2", "d3"], ["trips"], now_us())]
    assert found == [True, False, False, True]
    assert all(a.found for a in l1.get(quiet, ["q0", "q1"], ["trips"], now_us()))
    l1.invalidate(quiet, ["q0", "nobody"])
    l1.teardown(busy)
    assert len(l1) == 1 and l1.get(quiet, ["q1"], ["trips"], now_us())[0].values == {"trips": 1}


def test_redis_down_is_bypassed(tmp_path: Path) -> None:
    dead = RedisCache(redis_client(load_settings(redis_url="redis://127.0.0.1:1/0"), timeout_s=0.2), prefix="dead")
    store, t = tiered(tmp_path, InProcessCache(ttl_s=60), dead), table()
    store.update(t)
    store.put(t, [EntityRow("d1", T0, {"trips": 3})])
    (answer,) = store.get(t, ["d2", "d1"], ["trips"], now_us())[1:]
    assert answer.values == {"trips": 3}
    assert store.errors["redis"] >= 1
