"""The feature resolver over an in-process store (no I/O): values, defaults, staleness, deadline, breaker."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources

import pytest

from ma_ray.circuit_breaker import BreakerState, CircuitBreaker
from ma_ray.palette.online import (
    CacheRead,
    EntityRow,
    FeatureValues,
    InProcessCache,
    OnlineTable,
    TieredOnlineStore,
    now_us,
)
from ma_ray.palette.repository import load_repository
from ma_ray.serving.feature_resolver import (
    EntityKeyError,
    FeatureResolver,
    ServingCatalog,
    UnknownReferenceError,
)
from tests.store_doubles import InMemoryStoreDouble

with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as _path:
    REPO = load_repository(_path)
CATALOG = ServingCatalog(REPO)
STATS = "@palette:rideshare:driver_stats:{}:driver_id"
ACCEPT, CANCEL, TRIPS = (
    STATS.format("acceptance_rate"),
    STATS.format("cancellation_rate"),
    STATS.format("trip_count_7d"),
)
RELIABILITY = "@palette:rideshare:driver_model_inputs:reliability_score:driver_id"
PEAK = "@palette:rideshare:driver_model_inputs:peak_hour_request:driver_id"
RIDER_TRIPS = "@palette:rideshare:rider_stats:trip_count_28d:rider_id"


def table(group: str) -> OnlineTable:
    return next(t for t in CATALOG.tables() if t.group == group)


def store_with(rows: dict[str, list[EntityRow]]) -> InProcessCache:
    store = InProcessCache(ttl_s=3600)
    for group, group_rows in rows.items():
        store.put(table(group), group_rows)
    return store


class GatedStore(InMemoryStoreDouble):
    """An online store that waits on a gate (a slow backend) or raises (a dead one); writes go to its inner cache."""

    layer = "gated"

    def __init__(self, inner: InProcessCache, fail: bool = False) -> None:
        super().__init__(inner)
        self.fail, self.gate = fail, threading.Event()

    def get(self, table: OnlineTable, keys: Sequence, features: Sequence[str], read_ts: int) -> list[FeatureValues]:
        if self.fail:
            raise ConnectionError("cassandra is down")
        self.gate.wait(5)
        return self.inner.get(table, keys, features, read_ts)


class NetworkedCacheDouble(InProcessCache):
    """An in-process cache the tiered store treats as networked, as Redis: each read of it recorded (the groups it
    was asked for), or refused while ``fail`` is set."""

    layer, local = "l2", False

    def __init__(self) -> None:
        super().__init__(ttl_s=3600)
        self.reads: list[list[str]] = []
        self.fail = False

    def hits_many(self, reads: Sequence[CacheRead], read_ts: int) -> list[list[FeatureValues | None]]:
        self.reads.append([table.group for table, _, _ in reads])
        if self.fail:
            raise ConnectionError("redis is down")
        return super().hits_many(reads, read_ts)


class RecordingPrimary(InMemoryStoreDouble):
    layer = "primary"

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get(self, table: OnlineTable, keys: Sequence, features: Sequence[str], read_ts: int) -> list[FeatureValues]:
        self.reads.append(table.group)
        return self.inner.get(table, keys, features, read_ts)


def three_layers() -> tuple[InProcessCache, NetworkedCacheDouble, RecordingPrimary, FeatureResolver]:
    """L1 -> a networked L2 -> a remote primary, as production's L1 -> Redis -> Cassandra."""
    l1, l2, primary = InProcessCache(ttl_s=3600), NetworkedCacheDouble(), RecordingPrimary()
    resolver = FeatureResolver(CATALOG, TieredOnlineStore(primary, [l1, l2]), timeout_s=1.0)
    return l1, l2, primary, resolver


@pytest.mark.parametrize("awaited", [False, True], ids=["resolve", "resolve_async"])
def test_a_networked_cache_is_asked_once_for_every_group_of_a_request(awaited: bool) -> None:
    """One round trip to Redis for all of a request's feature groups, not one per group: the L2 is asked once for the
    groups the L1 could not answer, and the primary only for what neither cache held."""
    l1, l2, primary, resolver = three_layers()
    ts = now_us() - 10
    driver, rider = table("driver_stats"), table("rider_stats")
    l1.put(driver, [EntityRow("d1", ts, {"trip_count_7d": 3})])
    l2.put(driver, [EntityRow("d2", ts, {"trip_count_7d": 5})])
    l2.put(rider, [EntityRow("r1", ts, {"trip_count_28d": 7})])
    primary.put(rider, [EntityRow("r2", ts, {"trip_count_28d": 9})])
    rows = [{"driver_id": "d1", "rider_id": "r1"}, {"driver_id": "d2", "rider_id": "r2"}]
    refs = [TRIPS, RIDER_TRIPS]
    result = asyncio.run(resolver.resolve_async(rows, refs)) if awaited else resolver.resolve(rows, refs)
    assert [row.values[TRIPS] for row in result.rows] == [3, 5]
    assert [row.values[RIDER_TRIPS] for row in result.rows] == [7, 9]
    assert [row.meta[TRIPS].tier for row in result.rows] == ["l1", "l2"]
    assert l2.reads == [["driver_stats", "rider_stats"]] and primary.reads == ["rider_stats"]
    l2.reads.clear()
    again = [{"driver_id": "d1", "rider_id": "r1"}]  # d1 in the L1; r1 filled into it from the L2
    asyncio.run(resolver.resolve_async(again, refs)) if awaited else resolver.resolve(again, refs)
    assert l2.reads == [] and primary.reads == ["rider_stats"]
    resolver.close()


def test_a_failing_networked_cache_sends_every_group_to_the_primary_and_counts_one_failure() -> None:
    _, l2, primary, resolver = three_layers()
    ts = now_us() - 10
    primary.put(table("driver_stats"), [EntityRow("d1", ts, {"trip_count_7d": 3})])
    primary.put(table("rider_stats"), [EntityRow("r1", ts, {"trip_count_28d": 7})])
    l2.fail = True
    row = resolver.resolve([{"driver_id": "d1", "rider_id": "r1"}], [TRIPS, RIDER_TRIPS]).rows[0]
    assert row.values[TRIPS] == 3 and row.values[RIDER_TRIPS] == 7 and not row.meta[TRIPS].defaulted
    assert l2.reads == [["driver_stats", "rider_stats"]] and sorted(primary.reads) == ["driver_stats", "rider_stats"]
    assert isinstance(resolver.store, TieredOnlineStore) and resolver.store.errors["l2"] == 1
    resolver.close()


def test_values_defaults_and_derived_features() -> None:
    ts = now_us() - 1_000_000
    store = store_with(
        {"driver_stats": [EntityRow("d1", ts, {"acceptance_rate": 0.9, "cancellation_rate": 0.1, "trip_count_7d": 12})]}
    )
    resolver = FeatureResolver(CATALOG, store, timeout_s=1.0)
    rows = [
        {"driver_id": "d1", "rider_id": "r1", "request_ts": datetime(2026, 1, 5, 8, 30, tzinfo=UTC)},
        {"driver_id": "unknown", "rider_id": "r1", "request_ts": datetime(2026, 1, 5, 13, 0, tzinfo=UTC)},
    ]
    result = resolver.resolve(rows, [TRIPS, RELIABILITY, PEAK, RIDER_TRIPS])
    known, missing = result.rows
    assert not result.degraded
    assert known.values[TRIPS] == 12 and known.values[RELIABILITY] == pytest.approx(0.81)
    assert known.values[PEAK] is True and missing.values[PEAK] is False
    assert known.meta[TRIPS].tier == "l1" and 0.9 < known.meta[TRIPS].staleness_s < 60
    assert missing.values[TRIPS] == 0 and missing.meta[TRIPS].defaulted  # the catalog default
    assert missing.values[RELIABILITY] == pytest.approx(1.0)  # nfill of the defaults in the expression
    assert known.values[RIDER_TRIPS] == 0 and known.meta[RIDER_TRIPS].defaulted
    assert set(known.values) == {TRIPS, RELIABILITY, PEAK, RIDER_TRIPS}


def test_old_values_are_served_and_flagged_stale() -> None:
    eight_days_ago = now_us() - 8 * 86_400 * 1_000_000
    store = store_with({"driver_stats": [EntityRow("d1", eight_days_ago, {"trip_count_7d": 3})]})
    row = FeatureResolver(CATALOG, store).resolve([{"driver_id": "d1"}], [TRIPS]).rows[0]
    assert row.values[TRIPS] == 3 and row.meta[TRIPS].stale and not row.meta[TRIPS].defaulted


def test_slow_store_gets_defaults_within_the_deadline_and_trips_the_breaker() -> None:
    gated = GatedStore(store_with({"driver_stats": [EntityRow("d1", now_us() - 10, {"trip_count_7d": 3})]}))
    breaker = CircuitBreaker("online_store", failure_threshold=2, reset_timeout_s=60)
    resolver = FeatureResolver(CATALOG, gated, timeout_s=0.05, breaker=breaker)
    for _ in range(2):
        result = resolver.resolve([{"driver_id": "d1"}], [TRIPS])
        assert result.degraded and result.rows[0].values[TRIPS] == 0 and result.rows[0].meta[TRIPS].defaulted
    assert breaker.state is BreakerState.OPEN
    gated.gate.set()
    skipped = resolver.resolve([{"driver_id": "d1"}], [TRIPS])
    assert skipped.degraded and skipped.rows[0].values[TRIPS] == 0  # open: the store is not even asked
    resolver.close()


def test_a_dead_store_degrades_then_recovers() -> None:
    inner = store_with({"driver_stats": [EntityRow("d1", now_us() - 10, {"trip_count_7d": 3})]})
    dead = GatedStore(inner, fail=True)
    clock = [0.0]
    breaker = CircuitBreaker("online_store", failure_threshold=1, reset_timeout_s=1, clock=lambda: clock[0])
    resolver = FeatureResolver(CATALOG, dead, timeout_s=1.0, breaker=breaker)
    assert resolver.resolve([{"driver_id": "d1"}], [TRIPS]).degraded
    dead.fail = False
    dead.gate.set()
    clock[0] = 2.0
    healed = resolver.resolve([{"driver_id": "d1"}], [TRIPS])
    assert not healed.degraded and healed.rows[0].values[TRIPS] == 3
    assert breaker.state is BreakerState.CLOSED


def test_bad_requests() -> None:
    resolver = FeatureResolver(CATALOG, InProcessCache())
    with pytest.raises(UnknownReferenceError, match="unknown feature reference"):
        resolver.resolve([{"driver_id": "d1"}], ["@palette:rideshare:driver_stats:nope:driver_id"])
    with pytest.raises(EntityKeyError, match="lacks 'driver_id'"):
        resolver.resolve([{"rider_id": "r1"}], [TRIPS])
    with pytest.raises(EntityKeyError, match="'driver_id' must be a string, got 7"):
        resolver.resolve([{"driver_id": 7}], [TRIPS])


def test_metrics_record_tiers_defaults_staleness_and_breakers() -> None:
    from prometheus_client import CollectorRegistry

    from ma_ray.metrics import PrometheusMetrics
    from ma_ray.serving.feature_metrics import FeatureMetrics

    registry = CollectorRegistry()
    store = store_with({"driver_stats": [EntityRow("d1", now_us() - 5_000_000, {"trip_count_7d": 3})]})
    resolver = FeatureResolver(CATALOG, store, timeout_s=1.0, metrics=FeatureMetrics(PrometheusMetrics(registry)))
    resolver.resolve([{"driver_id": "d1"}, {"driver_id": "d2"}], [TRIPS])

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("ma_ray_feature_values_total", tier="l1") == 1
    assert sample("ma_ray_feature_defaults_total", reason="missing") == 1
    assert sample("ma_ray_feature_lookup_seconds_count", cache="hit") == 1
    assert sample("ma_ray_feature_staleness_seconds_count", group="rideshare.driver_stats") == 1
    assert sample("ma_ray_feature_store_breaker_open", backend="deadline") == 0


def test_a_breaker_that_opens_shows_in_its_gauge_at_the_next_lookup() -> None:
    from prometheus_client import CollectorRegistry

    from ma_ray.metrics import PrometheusMetrics
    from ma_ray.serving.feature_metrics import FeatureMetrics

    registry = CollectorRegistry()
    store = store_with({"driver_stats": [EntityRow("d1", now_us() - 5_000_000, {"trip_count_7d": 3})]})
    breaker = CircuitBreaker("online_store", failure_threshold=1, reset_timeout_s=60)
    metrics = FeatureMetrics(PrometheusMetrics(registry))
    resolver = FeatureResolver(CATALOG, store, timeout_s=1.0, breaker=breaker, metrics=metrics)
    resolver.resolve([{"driver_id": "d1"}], [TRIPS])
    assert registry.get_sample_value("ma_ray_feature_store_breaker_open", {"backend": "deadline"}) == 0
    breaker.record_failure()  # opens: the next lookup is served defaults without asking the store
    assert resolver.resolve([{"driver_id": "d2"}], [TRIPS]).degraded
    assert registry.get_sample_value("ma_ray_feature_store_breaker_open", {"backend": "deadline"}) == 1


REALTIME = "@palette:rideshare:driver_realtime:trip_count_1h:driver_id"


def test_a_lagging_stream_serves_batch_values_and_says_so(tmp_path) -> None:
    from prometheus_client import CollectorRegistry

    from ma_ray.metrics import PrometheusMetrics
    from ma_ray.palette.streaming.health import FileHealthBoard, StreamHealth, StreamLagMonitor
    from ma_ray.serving.feature_metrics import FeatureMetrics

    registry = CollectorRegistry()
    stream_table = table("driver_realtime")
    store = store_with({"driver_realtime": [EntityRow("d1", now_us() - 5_000_000, {"trip_count_1h": 7})]})
    store.put(stream_table.batch_fallback(), [EntityRow("d1", now_us() - 3_600_000_000, {"trip_count_1h": 4})])
    clock = [0.0]
    board = FileHealthBoard(tmp_path)
    monitor = StreamLagMonitor(board, refresh_s=1.0, clock=lambda: clock[0])
    metrics = FeatureMetrics(PrometheusMetrics(registry))
    resolver = FeatureResolver(CATALOG, store, timeout_s=1.0, lag_monitor=monitor, metrics=metrics)
    row = {"driver_id": "d1"}

    first = resolver.resolve([row], [REALTIME, TRIPS])  # no actor has reported: the stream path is not deployed
    assert first.stream_fallback == () and first.rows[0].values[REALTIME] == 7

    board.publish("rideshare", "driver_realtime", StreamHealth("a0", 50_000, freshness_s=300.0, updated_us=now_us()))
    assert resolver.resolve([row], [REALTIME]).stream_fallback == ()  # the monitor re-reads once a second
    clock[0] = 2.0
    lagging = resolver.resolve([row], [REALTIME, TRIPS])
    assert lagging.stream_fallback == ("driver_realtime",)
    assert lagging.rows[0].values[REALTIME] == 4 and lagging.rows[0].meta[REALTIME].batch_fallback
    assert not lagging.rows[0].meta[TRIPS].batch_fallback  # batch groups are read as always
    assert registry.get_sample_value("ma_ray_feature_stream_fallback_total", {"group": "driver_realtime"}) == 1

    board.publish("rideshare", "driver_realtime", StreamHealth("a0", 0, freshness_s=0.5, updated_us=now_us()))
    clock[0] = 4.0
    caught_up = resolver.resolve([row], [REALTIME])
    assert caught_up.stream_fallback == () and caught_up.rows[0].values[REALTIME] == 7


def test_only_streaming_groups_have_a_lag_sla() -> None:
    from ma_ray.palette.catalog import DEFAULT_LAG_SLA_S, FeatureGroup

    realtime = next(g for g in REPO.groups if g.name == "driver_realtime")
    stats = next(g for g in REPO.groups if g.name == "driver_stats")
    assert realtime.stream_lag_sla_s == DEFAULT_LAG_SLA_S and stats.stream_lag_sla_s is None
    assert FeatureGroup.model_validate({**realtime.model_dump(), "lag_sla_s": 5}).stream_lag_sla_s == 5
    with pytest.raises(ValueError, match="only streaming groups"):
        FeatureGroup.model_validate({**stats.model_dump(), "lag_sla_s": 5})
    assert [t.name for t in CATALOG.fallback_tables()] == ["rideshare__driver_realtime__batch"]
