"""One write path for online values: every writer goes through the tiered store, which refreshes the caches in the
same step, so readers see a write within the L1 TTL of their own process (the seed's 100 ms), on every backend
mix. The seed's race condition 2 (a feature update during a prediction) on the real servers: writers update a batch
group and a streaming group while readers resolve requests over both; every answer is consistent with its one
read timestamp."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pytest

from ma_ray.config import Settings
from ma_ray.connections import redis_client
from ma_ray.palette.materialize import write_version
from ma_ray.palette.online import (
    EntityRow,
    InProcessCache,
    OnlineTable,
    RedisCache,
    TieredOnlineStore,
    now_us,
    open_online_store,
)
from ma_ray.palette.repository import load_repository
from ma_ray.serving.feature_resolver import FeatureResolver, ServingCatalog
from tests.integration.conftest import drop_online_keyspace, online_settings

with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as _path:
    REPO = load_repository(_path)
REALTIME = OnlineTable.of(REPO, next(g for g in REPO.groups if g.name == "driver_realtime"))
STATS = OnlineTable.of(REPO, next(g for g in REPO.groups if g.name == "driver_stats"))
TRIPS_1H = "@palette:rideshare:driver_realtime:trip_count_1h:driver_id"
TRIPS_7D = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"
L1_TTL_S = 0.1  # the seed's in-process cache TTL: the staleness bound across processes


@pytest.fixture(params=["sqlite", "cassandra"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    services = request.getfixturevalue("services") if request.param == "cassandra" else None
    settings = online_settings(services, tmp_path, l1_cache_ttl_s=L1_TTL_S)
    yield settings
    if services is not None:
        drop_online_keyspace(services, settings)


def reader(settings: Settings) -> FeatureResolver:
    """A feature-serving replica of its own: its own L1 (and Redis client), the shared servers behind them."""
    return FeatureResolver(ServingCatalog(REPO), open_online_store(settings), timeout_s=5.0)


def served(resolver: FeatureResolver, driver: str, ref: str) -> object:
    return resolver.resolve([{"driver_id": driver}], [ref]).rows[0].values[ref]


def test_a_streamed_value_reaches_a_warm_reader_within_the_l1_ttl(settings: Settings) -> None:
    """The issue's reproduction: write as the aggregator does, read, write a newer value, read again."""
    writer = open_online_store(settings)  # what actors/stream_aggregator.py opens
    writer.update(REALTIME)
    replica = reader(settings)
    try:
        writer.put(REALTIME, [EntityRow("drv_1", now_us() - 1_000, {"trip_count_1h": 1, "completed_trips_1d": 1})])
        for _ in range(3):  # warm: L1, and Redis in production, now hold the first value
            assert served(replica, "drv_1", TRIPS_1H) == 1
        writer.put(REALTIME, [EntityRow("drv_1", now_us(), {"trip_count_1h": 2, "completed_trips_1d": 2})])
        written = time.monotonic()
        deadline = written + 5.0
        while served(replica, "drv_1", TRIPS_1H) != 2:
            assert time.monotonic() < deadline, "the reader still serves the older value 5 s after the write"
            time.sleep(0.01)
        assert time.monotonic() - written <= L1_TTL_S + 0.2  # the L1 TTL plus a read on a busy 2-core machine
        time.sleep(L1_TTL_S * 1.5)
        assert served(replica, "drv_1", TRIPS_1H) == 2
    finally:
        writer.close()
        replica.store.close()


def test_a_backfill_of_older_rows_never_poses_as_the_newest(settings: Settings) -> None:
    writer = open_online_store(settings)
    writer.update(STATS)
    replica = reader(settings)
    try:
        newest = now_us() - 1_000_000
        write_version(writer, STATS, [EntityRow("drv_2", newest, {"trip_count_7d": 60})])
        assert served(replica, "drv_2", TRIPS_7D) == 60
        time.sleep(L1_TTL_S * 1.5)
        for cache in [*writer.caches, *replica.store.caches]:  # as when the cached entries expired
            cache.invalidate(STATS, ["drv_2"])
        write_version(writer, STATS, [EntityRow("drv_2", newest - 86_400_000_000, {"trip_count_7d": 10})])
        for _ in range(3):
            assert served(replica, "drv_2", TRIPS_7D) == 60
            time.sleep(L1_TTL_S * 0.6)
    finally:
        writer.close()
        replica.store.close()


@dataclass
class WriteLog:
    """Each (table, key)'s writes as (feature_ts, monotonic time the write path returned)."""

    writes: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self, table: OnlineTable, rows: list[EntityRow]) -> None:
        finished = time.monotonic()
        with self.lock:
            for row in rows:
                self.writes[(table.group, str(row.key))].append((row.feature_ts, finished))

    def newest_before(self, table: OnlineTable, key: str, before: float) -> int | None:
        with self.lock:
            stamps = [ts for ts, finished in self.writes[(table.group, key)] if finished < before]
        return max(stamps, default=None)


def _stream_writer(store: TieredOnlineStore, log: WriteLog, drivers: list[str], stop: threading.Event) -> None:
    rng = random.Random(1)
    while not stop.is_set():
        rows = [EntityRow(d, now_us(), {"trip_count_1h": rng.randint(0, 9), "completed_trips_1d": 1})
                for d in rng.sample(drivers, 3)]  # fmt: skip
        store.put(REALTIME, rows)
        log.done(REALTIME, rows)


def _batch_writer(store: TieredOnlineStore, log: WriteLog, drivers: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        version = now_us()
        rows = [EntityRow(d, version, {"trip_count_7d": version % 1000}) for d in drivers]
        write_version(store, STATS, rows)  # what the batch Datasink does with each batch of a snapshot
        log.done(STATS, rows)
        time.sleep(0.02)


@dataclass
class Violations:
    checked: int = 0
    found: list[str] = field(default_factory=list)


def _reader_loop(resolver: FeatureResolver, log: WriteLog, drivers: list[str], stop: threading.Event,
                 out: Violations) -> None:  # fmt: skip
    tables = {TRIPS_1H: REALTIME, TRIPS_7D: STATS}
    rng = random.Random()
    while not stop.is_set():
        keys = rng.sample(drivers, 4)
        started = time.monotonic()
        result = resolver.resolve([{"driver_id": k} for k in keys], [TRIPS_1H, TRIPS_7D])
        bound = started - L1_TTL_S  # writes finished before this must show: an L1 entry lives a TTL past its read
        for key, row in zip(keys, result.rows, strict=True):
            for ref, table in tables.items():
                meta, floor = row.meta[ref], log.newest_before(table, key, bound)
                out.checked += 1
                if meta.feature_ts is not None and meta.feature_ts > result.read_ts:
                    out.found.append(f"{table.group}/{key}: {meta.feature_ts} newer than read_ts {result.read_ts}")
                if floor is not None and (meta.feature_ts is None or meta.feature_ts < floor):
                    out.found.append(f"{table.group}/{key}: {meta.feature_ts} ({meta.tier}) older than {floor}")


def _reporting(loop: Callable[..., None], out: Violations) -> Callable[..., None]:
    """A thread body whose exception becomes a finding (a thread's exception would otherwise pass silently)."""

    def run(*args: object) -> None:
        try:
            loop(*args)
        except Exception as error:  # reported by the test, not lost with the thread
            out.found.append(f"{loop.__name__} raised {type(error).__name__}: {error}")

    return run


@pytest.mark.parametrize("iteration", range(3))
def test_race_condition_2_readers_see_one_consistent_read_ts(services: Settings, tmp_path: Path,
                                                              iteration: int) -> None:  # fmt: skip
    """Cassandra + Redis: a stream writer and a batch writer against four readers (replicas of their own)."""
    settings = online_settings(services, tmp_path, l1_cache_ttl_s=L1_TTL_S)
    prefix = f"mr:{settings.cassandra.keyspace}"
    drivers = [f"drv_{i}" for i in range(12)]
    writer = open_online_store(settings)
    for table in (REALTIME, STATS):
        writer.update(table)
        rows = [EntityRow(d, now_us(), {name: 0 for name in table.features}) for d in drivers]
        writer.put(table, rows)
    replicas = [
        FeatureResolver(ServingCatalog(REPO), TieredOnlineStore(
            writer.primary, [InProcessCache(L1_TTL_S), RedisCache(redis_client(settings), prefix=prefix)]
        ), timeout_s=5.0)
        for _ in range(4)
    ]  # fmt: skip  # replicas of their own caches; they share the primary's Cassandra session
    log, stop, out = WriteLog(), threading.Event(), Violations()
    loops = [(_stream_writer, (writer, log, drivers, stop)), (_batch_writer, (writer, log, drivers, stop))]
    loops += [(_reader_loop, (replica, log, drivers, stop, out)) for replica in replicas]
    threads = [threading.Thread(target=_reporting(loop, out), args=args) for loop, args in loops]
    for thread in threads:
        thread.start()
    time.sleep(6.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert not any(t.is_alive() for t in threads), "a writer or reader did not stop"
        assert out.checked > 200, out.checked
        assert out.found == [], f"{len(out.found)} of {out.checked} answers broke read_ts: {out.found[:5]}"
    finally:
        for replica in replicas:
            for cache in replica.store.caches:
                cache.close()
        drop_online_keyspace(services, settings)
        writer.close()
