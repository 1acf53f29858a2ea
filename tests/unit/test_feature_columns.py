"""The resolver's column-wise result, its in-process read path, metrics per request, and the wire answer."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources

import pytest

from ma_ray.palette.online import (
    EntityRow,
    FeatureValues,
    InProcessCache,
    OnlineTable,
    TieredOnlineStore,
    now_us,
)
from ma_ray.palette.repository import load_repository
from ma_ray.serving.feature_answer import FeatureAnswer
from ma_ray.serving.feature_resolver import FeatureResolver, ServingCatalog
from ma_ray.serving.resolution import Resolution
from tests.store_doubles import InMemoryStoreDouble

with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as _path:
    CATALOG = ServingCatalog(load_repository(_path))
STATS = "@palette:rideshare:driver_stats:{}:driver_id"
TRIPS, ACCEPT = STATS.format("trip_count_7d"), STATS.format("acceptance_rate")
RELIABILITY = "@palette:rideshare:driver_model_inputs:reliability_score:driver_id"
REQUEST_TS = "@basis:request_ts"
STATS_TABLE = next(t for t in CATALOG.tables() if t.group == "driver_stats")


class CountingStore(InMemoryStoreDouble):
    """A primary that counts the keys it is asked about and can be held (a slow backend)."""

    layer = "primary"

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list] = []
        self.gate = threading.Event()
        self.gate.set()

    def get(self, table: OnlineTable, keys: Sequence, features: Sequence[str], read_ts: int) -> list[FeatureValues]:
        self.asked.append(list(keys))
        self.gate.wait(5)
        answers = self.inner.get(table, keys, features, read_ts)
        return [FeatureValues(a.key, a.feature_ts, a.values, self.layer) for a in answers]


def stats_row(driver: str, trips: int, ts: int) -> EntityRow:
    return EntityRow(driver, ts, {"trip_count_7d": trips, "acceptance_rate": 0.5, "cancellation_rate": 0.1})


def tiered_resolver(timeout_s: float = 1.0) -> tuple[FeatureResolver, CountingStore, InProcessCache]:
    primary, l1 = CountingStore(), InProcessCache(ttl_s=3600)
    ts = now_us() - 2_000_000
    primary.put(STATS_TABLE, [stats_row(f"d{i}", i, ts) for i in range(5)])
    return FeatureResolver(CATALOG, TieredOnlineStore(primary, [l1]), timeout_s=timeout_s), primary, l1


def test_columns_and_rows_agree_with_duplicate_keys_misses_and_derived_features() -> None:
    resolver, _, _ = tiered_resolver()
    moment = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    rows = [{"driver_id": d, "request_ts": moment} for d in ("d1", "nobody", "d1", "d3")]
    result = resolver.resolve(rows, [TRIPS, RELIABILITY, REQUEST_TS])
    assert len(result) == 4 and result.columns[TRIPS] == [1, 0, 1, 3]  # 0: the catalog default
    assert result.meta[TRIPS].defaulted == [False, True, False, False]
    assert result.meta[TRIPS].tier == ["primary", "none", "primary", "primary"]
    assert result.columns[REQUEST_TS] == [moment] * 4 and result.meta[REQUEST_TS].tier == ["request"] * 4
    assert set(result.meta[RELIABILITY].tier) == {"dsl"}
    for i, row in enumerate(result.rows):
        assert row.values == {ref: result.columns[ref][i] for ref in (TRIPS, RELIABILITY, REQUEST_TS)}
        assert row.meta[TRIPS].tier == result.meta[TRIPS].tier[i]
        assert row.meta[TRIPS].staleness_s == result.meta[TRIPS].staleness_s[i]
    assert result.tiers() == {"primary", "none", "dsl", "request"}


def test_a_derived_feature_alone_reads_its_inputs_without_returning_them() -> None:
    from prometheus_client import CollectorRegistry

    from ma_ray.metrics import PrometheusMetrics
    from ma_ray.serving.feature_metrics import FeatureMetrics

    registry = CollectorRegistry()
    resolver, _, _ = tiered_resolver()
    resolver.metrics = FeatureMetrics(PrometheusMetrics(registry))
    result = resolver.resolve([{"driver_id": "d2"}], [RELIABILITY])
    assert list(result.columns) == [RELIABILITY] and result.rows[0].meta[RELIABILITY].tier == "dsl"
    assert registry.get_sample_value("ma_ray_feature_lookup_seconds_count", {"cache": "miss"}) == 1


def test_in_process_hits_take_no_store_read_and_misses_read_only_the_missing_keys() -> None:
    resolver, primary, l1 = tiered_resolver()
    resolver.resolve([{"driver_id": "d1"}, {"driver_id": "d2"}], [TRIPS])  # fills the L1
    assert primary.asked == [["d1", "d2"]]
    hit = resolver.resolve([{"driver_id": "d2"}, {"driver_id": "d1"}], [TRIPS, ACCEPT])
    assert primary.asked == [["d1", "d2"]] and hit.meta[TRIPS].tier == ["l1", "l1"]
    mixed = resolver.resolve([{"driver_id": "d1"}, {"driver_id": "d4"}, {"driver_id": "d1"}], [TRIPS])
    assert primary.asked[-1] == ["d4"]  # the L1 was asked once, in the caller's thread; only d4 went further
    assert mixed.columns[TRIPS] == [1, 4, 1] and mixed.meta[TRIPS].tier == ["l1", "primary", "l1"]
    assert len(l1) == 3


def test_past_the_deadline_in_process_hits_are_served_and_the_rest_defaulted() -> None:
    resolver, primary, _ = tiered_resolver(timeout_s=0.05)
    resolver.resolve([{"driver_id": "d1"}], [TRIPS])
    primary.gate.clear()  # the primary hangs
    try:
        result = resolver.resolve([{"driver_id": "d1"}, {"driver_id": "d3"}], [TRIPS])
    finally:
        primary.gate.set()
    assert result.degraded and result.columns[TRIPS] == [1, 0]
    assert result.meta[TRIPS].tier == ["l1", "deadline"] and result.meta[TRIPS].defaulted == [False, True]


class RecordingInstrument:
    """Counts every record call, bound or not."""

    def __init__(self, calls: list, name: str, tags: dict | None = None) -> None:
        self.calls, self.name, self.tags = calls, name, tags or {}

    def record(self, value: float, tags: dict | None = None) -> None:
        self.calls.append((self.name, tags or self.tags, value))

    def bound(self, tags: dict) -> RecordingInstrument:
        return RecordingInstrument(self.calls, self.name, tags)


class RecordingBackend:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, float]] = []

    def counter(self, name: str, description: str, tag_keys: Sequence[str] = ()) -> RecordingInstrument:
        return RecordingInstrument(self.calls, name)

    def gauge(self, name: str, description: str, tag_keys: Sequence[str] = ()) -> RecordingInstrument:
        return RecordingInstrument(self.calls, name)

    def histogram(
        self, name: str, description: str, boundaries: Sequence[float], tag_keys: Sequence[str] = ()
    ) -> RecordingInstrument:
        return RecordingInstrument(self.calls, name)


def test_metrics_are_recorded_per_request_and_group_not_per_value() -> None:
    from ma_ray.serving.feature_metrics import FeatureMetrics

    backend = RecordingBackend()
    resolver, _, _ = tiered_resolver()
    resolver.metrics = FeatureMetrics(backend)  # type: ignore[arg-type]
    rows = [{"driver_id": f"d{i % 5}"} for i in range(100)] + [{"driver_id": "nobody"}]
    resolver.resolve(rows, [TRIPS, ACCEPT])
    by_name: dict[str, list] = {}
    for name, tags, value in backend.calls:
        by_name.setdefault(name, []).append((tags, value))
    assert by_name["ma_ray_feature_values_total"] == [({"tier": "primary"}, 200)]
    assert by_name["ma_ray_feature_defaults_total"] == [({"reason": "missing"}, 2)]
    assert len(by_name["ma_ray_feature_staleness_seconds"]) == 1  # the group's oldest served value
    assert len(by_name["ma_ray_feature_lookup_seconds"]) == 1
    empty = resolver.resolve([], [TRIPS, RELIABILITY])  # no rows: empty columns, nothing to count
    assert len(empty) == 0 and empty.columns == {TRIPS: [], RELIABILITY: []} and empty.rows == []


def test_the_answer_crosses_a_hop_as_columns_and_reads_as_rows() -> None:
    resolver, _, _ = tiered_resolver()
    moment = datetime(2026, 1, 5, 8, 30, 0, 250, tzinfo=UTC)
    rows = [{"driver_id": "d1", "request_ts": moment}, {"driver_id": "nobody", "request_ts": moment}]
    answer = FeatureAnswer.of(resolver.resolve(rows, [TRIPS, ACCEPT, REQUEST_TS]))
    assert pickle.loads(pickle.dumps(answer))["rows"] == answer["rows"]
    assert "_rows" not in pickle.dumps(answer).decode("latin-1")  # rows built for a reader are never sent
    assert dict(answer).keys() == {"read_ts", "degraded", "stream_fallback", "rows"}
    first = answer["rows"][0]
    assert first["values"] == {TRIPS: 1, ACCEPT: 0.5, REQUEST_TS: moment}
    assert first["meta"][TRIPS]["tier"] == "primary" and answer["rows"][1]["meta"][TRIPS]["defaulted"] is True
    body = json.loads(answer.to_json())
    assert body["read_ts"] == answer.read_ts and body["degraded"] is False
    assert body["rows"][0][REQUEST_TS]["value"] == moment.isoformat()
    assert body["rows"][1][TRIPS] == {"value": 0, **answer["rows"][1]["meta"][TRIPS]}
    with pytest.raises(KeyError):
        answer["values"]


def test_a_local_store_is_read_in_the_callers_thread_even_while_a_writer_holds_it(tmp_path) -> None:
    from ma_ray.palette.online.sqlite import SqliteOnlineStore

    readers: list[str] = []

    class Sqlite(SqliteOnlineStore):
        def get(self, table, keys, features, read_ts):  # type: ignore[no-untyped-def]
            readers.append(threading.current_thread().name)
            return super().get(table, keys, features, read_ts)

    primary = Sqlite(tmp_path / "online.sqlite")
    store = TieredOnlineStore(primary, [InProcessCache(ttl_s=3600)])
    assert store.local and not TieredOnlineStore(CountingStore(), [InProcessCache()]).local
    store.update(STATS_TABLE)
    store.put(STATS_TABLE, [stats_row("d1", 7, now_us() - 1)])
    resolver = FeatureResolver(CATALOG, store, timeout_s=1.0)
    with primary._lock:  # a bulk load in progress holds the writer's connection
        result = resolver.resolve([{"driver_id": "d1"}, {"driver_id": "d9"}], [TRIPS])
    assert result.columns[TRIPS] == [7, 0] and result.meta[TRIPS].tier == ["sqlite", "none"]
    assert readers == [threading.current_thread().name]


def test_an_awaited_primary_read_leaves_the_event_loop_to_other_requests() -> None:
    resolver, primary, _ = tiered_resolver(timeout_s=2.0)
    resolver.resolve([{"driver_id": "d1"}], [TRIPS])  # d1 is in the L1 now

    async def scenario() -> tuple[Resolution, Resolution, bool]:
        primary.gate.clear()  # the primary hangs
        slow = asyncio.create_task(resolver.resolve_async([{"driver_id": "d3"}], [TRIPS]))
        await asyncio.sleep(0.05)
        fast = await resolver.resolve_async([{"driver_id": "d1"}], [TRIPS])  # the L1's: answered meanwhile
        waiting = not slow.done()
        primary.gate.set()
        return await slow, fast, waiting

    slow, fast, waiting = asyncio.run(scenario())
    assert waiting and fast.columns[TRIPS] == [1] and fast.meta[TRIPS].tier == ["l1"]
    assert slow.columns[TRIPS] == [3] and slow.meta[TRIPS].tier == ["primary"] and not slow.degraded


def test_an_awaited_read_past_the_deadline_serves_defaults_as_the_blocking_one_does() -> None:
    resolver, primary, _ = tiered_resolver(timeout_s=0.05)
    rows = [{"driver_id": "d2"}, {"driver_id": "d3"}]
    resolver.resolve(rows[:1], [TRIPS])
    primary.gate.clear()
    try:
        awaited = asyncio.run(resolver.resolve_async(rows, [TRIPS]))
        blocking = resolver.resolve(rows, [TRIPS])
    finally:
        primary.gate.set()
    for result in (awaited, blocking):
        assert result.degraded and result.columns[TRIPS] == [2, 0]
        assert result.meta[TRIPS].tier == ["l1", "deadline"]


def test_an_awaited_read_past_the_deadline_is_left_to_finish_and_fills_the_cache() -> None:
    resolver, primary, _ = tiered_resolver(timeout_s=0.05)

    async def scenario() -> Resolution:
        primary.gate.clear()  # the primary answers after the deadline
        late = await resolver.resolve_async([{"driver_id": "d4"}], [TRIPS])
        primary.gate.set()
        deadline = time.monotonic() + 5
        while resolver._late_reads and time.monotonic() < deadline:  # the late read lands, then is forgotten
            await asyncio.sleep(0.01)
        return late

    late = asyncio.run(scenario())
    assert late.degraded and late.meta[TRIPS].tier == ["deadline"] and late.columns[TRIPS] == [0]
    assert not resolver._late_reads
    again = resolver.resolve([{"driver_id": "d4"}], [TRIPS])
    assert again.columns[TRIPS] == [4] and again.meta[TRIPS].tier == ["l1"]  # the late answer filled the L1
