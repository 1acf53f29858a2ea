"""An L1 entry filled by a slow read lives at most the L1 TTL past the moment that read began: a write another
process made meanwhile never reaches this cache, so only the TTL bounds how long the old value is served."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ma_ray.palette.online import EntityRow, FeatureValues, InProcessCache, OnlineTable, TieredOnlineStore, now_us
from ma_ray.palette.types import FeatureType
from tests.store_doubles import InMemoryStoreDouble

TTL_S = 0.1
TABLE = OnlineTable("test", "drivers", FeatureType.STRING, {"trips": FeatureType.INT}, 3600)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class SlowPrimary(InMemoryStoreDouble):
    """A primary whose every read takes ``read_s`` on the shared clock."""

    layer = "primary"

    def __init__(self, clock: Clock, read_s: float) -> None:
        super().__init__()
        self.clock, self.read_s, self.reads = clock, read_s, 0

    def get(self, table: OnlineTable, keys: Sequence, features: Sequence[str], read_ts: int) -> list[FeatureValues]:
        self.clock.now += self.read_s
        self.reads += 1
        return self.inner.get(table, keys, features, read_ts)


def store(read_s: float) -> tuple[TieredOnlineStore, SlowPrimary, Clock]:
    clock = Clock()
    primary = SlowPrimary(clock, read_s)
    primary.put(TABLE, [EntityRow("d1", now_us() - 1_000_000, {"trips": 1})])
    return TieredOnlineStore(primary, [InProcessCache(TTL_S, clock=clock)]), primary, clock


@pytest.mark.unit
def test_a_fill_from_a_quick_read_is_served_for_the_ttl() -> None:
    tiered, primary, clock = store(read_s=0.01)
    for _ in range(2):
        assert tiered.get(TABLE, ["d1"], ["trips"], now_us())[0].values == {"trips": 1}
    assert primary.reads == 1  # the second read was the L1's
    clock.now += TTL_S
    tiered.get(TABLE, ["d1"], ["trips"], now_us())
    assert primary.reads == 2


@pytest.mark.unit
def test_a_fill_from_a_slow_read_expires_a_ttl_after_the_read_began() -> None:
    tiered, primary, clock = store(read_s=0.06)
    tiered.get(TABLE, ["d1"], ["trips"], now_us())
    clock.now += 0.05  # 0.11 s after the first read began: past the TTL, though 0.05 s after its fill
    tiered.get(TABLE, ["d1"], ["trips"], now_us())
    assert primary.reads == 2


@pytest.mark.unit
def test_a_direct_fill_without_a_stamp_counts_from_now_and_a_stale_stamp_is_never_served() -> None:
    clock = Clock()
    l1 = InProcessCache(TTL_S, clock=clock)
    row = EntityRow("d1", now_us() - 1_000_000, {"trips": 1})
    l1.put(TABLE, [row])
    assert l1.get(TABLE, ["d1"], ["trips"], now_us())[0].found
    l1.invalidate(TABLE, ["d1"])
    l1.put(TABLE, [row], read_started=clock.now - TTL_S)
    assert not l1.get(TABLE, ["d1"], ["trips"], now_us())[0].found


@pytest.mark.unit
def test_a_fill_counts_its_life_from_the_read_timestamp_when_that_is_older() -> None:
    tiered, primary, clock = store(read_s=0.0)
    tiered.get(TABLE, ["d1"], ["trips"], now_us() - 60_000)  # the request took its read timestamp 60 ms ago
    clock.now += 0.05  # 110 ms after the read timestamp
    tiered.get(TABLE, ["d1"], ["trips"], now_us())
    assert primary.reads == 2
