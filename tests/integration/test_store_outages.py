"""Backend outages under a lookup load, on private Cassandra and Redis servers that the test stops and starts:
answers keep coming from the caches or as defaults, breakers open, and close again once the server is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from ma_ray.circuit_breaker import BreakerState, CircuitBreaker
from ma_ray.config import Settings, load_settings
from ma_ray.connections import AsyncRedisReader, redis_client
from ma_ray.palette.online import (
    EntityRow,
    InProcessCache,
    OnlineTable,
    RedisCache,
    TieredOnlineStore,
    now_us,
    open_online_store,
)
from ma_ray.palette.online.cassandra import CassandraOnlineStore
from ma_ray.palette.repository import load_repository
from ma_ray.services import ServiceLauncher
from ma_ray.serving.feature_resolver import FeatureResolver, ServingCatalog
from tests.polling import wait_for
from tests.ports import free_port
from tests.tcp_cut import TcpCut

TRIPS = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"
with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as _path:
    REPO = load_repository(_path)
GROUP = next(g for g in REPO.groups if g.name == "driver_stats")
TABLE = OnlineTable.of(REPO, GROUP)


@pytest.fixture(scope="module")
def private(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, ServiceLauncher]]:
    state = tmp_path_factory.mktemp("outage")
    (state / "cache").symlink_to(services.cache_dir)
    settings = load_settings(
        state_dir=state,
        online_store="cassandra",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        cassandra_port=free_port(),
        cassandra_storage_port=free_port(),
        cassandra_heap_mb=512,
        cassandra_request_timeout_s=0.5,
    )
    launcher = ServiceLauncher(settings)
    launcher.up(("redis", "cassandra"))
    try:
        yield settings, launcher
    finally:
        launcher.down(("redis", "cassandra"))


def build(settings: Settings, tmp: Path) -> tuple[TieredOnlineStore, FeatureResolver]:
    breakers = {"cassandra": CircuitBreaker("cassandra", 2, 1.0), "redis": CircuitBreaker("redis", 2, 1.0)}
    aio = AsyncRedisReader(settings.redis.url, timeout_s=0.3)  # what an awaited lookup reads Redis through
    store = TieredOnlineStore(
        CassandraOnlineStore(settings),
        [
            InProcessCache(ttl_s=0.05),
            RedisCache(redis_client(settings, timeout_s=0.3), prefix=tmp.name, async_reader=aio),
        ],
        breakers,
    )
    store.update(TABLE)
    store.put(TABLE, [EntityRow(f"d{i}", now_us() - 1000, {"trip_count_7d": i}) for i in range(40)])
    return store, FeatureResolver(ServingCatalog(REPO), store, timeout_s=2.0)


def lookup(resolver: FeatureResolver, driver: int, awaited: bool = False) -> tuple[object, str, bool]:
    """The value, its tier and whether the lookup was degraded: read as a thread does, or as a replica's event
    loop does (``awaited``: Redis's and Cassandra's reads awaited, with no thread between; Redis filled off the
    answer's path)."""
    rows, refs = [{"driver_id": f"d{driver}"}], [TRIPS]
    result = asyncio.run(resolver.resolve_async(rows, refs)) if awaited else resolver.resolve(rows, refs)
    row = result.rows[0]
    return row.values[TRIPS], row.meta[TRIPS].tier, result.degraded


def eventually(check, timeout_s: float = 90.0) -> None:
    wait_for(check, timeout_s, "did not recover", interval_s=0.5)


@pytest.mark.parametrize("awaited", [False, True], ids=["blocking", "awaited"])
def test_cassandra_outage(private: tuple[Settings, ServiceLauncher], tmp_path: Path, awaited: bool) -> None:
    settings, launcher = private
    store, resolver = build(settings, tmp_path)
    for i in range(20):
        assert lookup(resolver, i, awaited)[0] == i  # d0..d19 now also cached in Redis (write-through refresh)
    store.caches[1].invalidate(TABLE, [f"d{i}" for i in range(20, 40)])
    launcher.down(("cassandra",))
    for _ in range(3):
        for i in (3, 7, 25, 31):
            value, tier, degraded = lookup(resolver, i, awaited)
            if i < 20:
                assert (value, tier in ("l1", "redis")) == (i, True)  # the caches keep answering
            else:
                assert (value, tier, degraded) == (0, "unavailable", True)  # the catalog default
    assert store.breakers["cassandra"].state is BreakerState.OPEN
    launcher.up(("cassandra",))
    eventually(lambda: lookup(resolver, 25, awaited)[:2] == (25, "cassandra"))
    assert store.breakers["cassandra"].state is BreakerState.CLOSED
    store.close()


@pytest.mark.parametrize("awaited", [False, True], ids=["blocking", "awaited"])
def test_redis_outage(private: tuple[Settings, ServiceLauncher], tmp_path: Path, awaited: bool) -> None:
    settings, launcher = private
    store, resolver = build(settings, tmp_path)
    launcher.down(("redis",))
    for _ in range(3):
        for i in (1, 2, 3):
            time.sleep(0.06)  # let L1 expire, so Redis would be asked
            value, tier, degraded = lookup(resolver, i, awaited)
            assert (value, tier, degraded) == (i, "cassandra", False)  # reads bypass Redis
    assert store.errors["redis"] >= 2 and store.breakers["redis"].state is BreakerState.OPEN
    launcher.up(("redis",))
    store.put(TABLE, [EntityRow("d5", now_us() - 10, {"trip_count_7d": 50})])
    time.sleep(1.1)  # the breaker's reset timeout
    eventually(lambda: (lookup(resolver, 5, awaited), time.sleep(0.06), lookup(resolver, 5, awaited))[2][1] == "redis")
    assert store.breakers["redis"].state is BreakerState.CLOSED
    store.close()


def test_a_refresh_redis_missed_is_applied_when_it_answers_again(
    private: tuple[Settings, ServiceLauncher], tmp_path: Path
) -> None:
    """The network between a writer and Redis fails while it updates a key: Cassandra takes the write, Redis keeps
    the old row (nothing reached it) and the writer owes it the refresh; once Redis answers again (through the
    breaker's half-open probe), the writer applies it and readers get the new value from Redis."""
    settings, _ = private
    cut = TcpCut(settings.redis.host_port[1])
    writer, _ = build(settings.replaced(redis_url=f"redis://127.0.0.1:{cut.port}/0"), tmp_path)
    _, reader = build(settings, tmp_path)  # another replica, straight to Redis: the same keys, its own L1
    time.sleep(0.06)
    assert lookup(reader, 7) == (7, "redis", False)  # warm: Redis holds the old row (the writers refreshed it)
    cut.cut()
    try:
        for value in (70, 71):  # two failed refreshes open the writer's Redis breaker
            writer.put(TABLE, [EntityRow("d7", now_us(), {"trip_count_7d": value})])
        assert writer.breakers["redis"].state is BreakerState.OPEN and writer.sync_caches() == 1
        time.sleep(0.06)
        assert lookup(reader, 7) == (7, "redis", False)  # the cost of the outage, until the writer catches up
    finally:
        cut.restore()
    eventually(lambda: writer.sync_caches() == 0, timeout_s=10)  # the half-open probe carries the owed refresh
    assert writer.breakers["redis"].state is BreakerState.CLOSED
    time.sleep(0.06)
    assert lookup(reader, 7) == (71, "redis", False)
    cut.cut()
    writer.close()
    reader.store.close()


@pytest.mark.parametrize("awaited", [False, True], ids=["blocking", "awaited"])
def test_a_hung_redis_costs_a_lookup_no_more_than_its_deadline(
    private: tuple[Settings, ServiceLauncher], tmp_path: Path, awaited: bool
) -> None:
    """Caches are read in the caller's thread (or awaited on its loop), Redis through a client bounded by the
    deadline: while Redis hangs (bytes accepted, no answer), a lookup still returns after about its deadline, with
    the default; once the Redis breaker opens, Cassandra answers within the deadline again."""
    settings, _ = private
    cut = TcpCut(settings.redis.host_port[1])
    hung = settings.replaced(redis_url=f"redis://127.0.0.1:{cut.port}/0", feature_timeout_s=0.1)
    store = open_online_store(hung)
    store.breakers["redis"] = CircuitBreaker("redis", 2, 30.0)
    store.update(TABLE)
    store.put(TABLE, [EntityRow("d1", now_us() - 1000, {"trip_count_7d": 1})])
    resolver = FeatureResolver(ServingCatalog(REPO), store, timeout_s=hung.online_store.feature_timeout_s)
    assert lookup(resolver, 1, awaited)[0] == 1  # the write left Redis a marker: this read fills it
    time.sleep(0.15)  # the L1 entry has expired: Redis answers
    assert lookup(resolver, 1, awaited) == (1, "redis", False)
    cut.stall()
    try:
        answers = []
        for _ in range(3):
            time.sleep(0.15)
            started = time.monotonic()
            answers.append((*lookup(resolver, 1, awaited), time.monotonic() - started))
        # The write client's timeout is 2 s with a retry: a read through it would block far longer than this.
        assert all(elapsed < 1.0 for *_, elapsed in answers), answers
        assert answers[0][:3] == (0, "deadline", True)  # Redis took the whole deadline: the default is served
        assert store.breakers["redis"].state is BreakerState.OPEN
        assert answers[-1][:3] == (1, "cassandra", False)  # Redis bypassed: the primary answers in time
    finally:
        cut.resume()
        cut.cut()
        store.close()
