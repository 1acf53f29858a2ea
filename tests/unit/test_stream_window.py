"""Bucketed sliding windows: against a brute-force window over the raw events, in any arrival order."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ma_ray.palette.catalog import AggregationFunction as F
from ma_ray.palette.streaming import EntityWindows, WindowAgg, bucket_seconds

US = 1_000_000
FUNCTIONS = [F.COUNT, F.SUM, F.MEAN, F.MIN, F.MAX, F.LAST, F.DISTINCT_COUNT]


def brute(function: F, agg: WindowAgg, events: list[tuple[int, int]], as_of: int):
    lo = agg.lower_bound_us(as_of)
    inside = [(ts, v) for ts, v in events if lo <= ts <= as_of]
    values = [v for _, v in inside]
    if function is F.COUNT:
        return len(values)
    if not values:
        return 0 if function is F.DISTINCT_COUNT else None
    return {
        F.SUM: lambda: sum(values),
        F.MEAN: lambda: sum(values) / len(values),
        F.MIN: lambda: min(values),
        F.MAX: lambda: max(values),
        F.LAST: lambda: max(inside)[1],
        F.DISTINCT_COUNT: lambda: len(set(values)),
    }[function]()


def test_bucket_widths_divide_their_windows() -> None:
    assert [bucket_seconds(w) for w in (900, 3600, 86_400, 604_800, 2_419_200)] == [60, 60, 3600, 3600, 86_400]
    assert bucket_seconds(5400) == 60 and bucket_seconds(90_000) == 3600
    assert WindowAgg.of(F.COUNT, 7 * 86_400).buckets == 168


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(st.tuples(st.integers(0, 3 * 3600 * US), st.integers(-5, 5)), min_size=1, max_size=60),
    window_s=st.sampled_from([600, 3600, 7200, 86_400]),
    seed=st.integers(0, 1000),
)
def test_every_function_matches_brute_force(events: list[tuple[int, int]], window_s: int, seed: int) -> None:
    arrival = list(events)
    random.Random(seed).shuffle(arrival)  # out of order: late events inside the window still count
    for function in FUNCTIONS:
        agg = WindowAgg.of(function, window_s)
        entity = EntityWindows(1)
        for ts, value in arrival:
            entity.advance(ts, (agg,))
            entity.add(0, agg, ts, value)
        latest = max(ts for ts, _ in events)
        for as_of in (latest, latest + 17 * US, latest + window_s * US // 2):
            assert entity.value(0, agg, as_of) == brute(function, agg, events, as_of), (function, as_of)


def test_memory_per_entity_is_bounded_by_the_buckets() -> None:
    agg = WindowAgg.of(F.COUNT, 3600)  # 60 one-minute buckets
    entity = EntityWindows(1)
    for second in range(0, 10 * 3600, 7):  # ten hours of events
        entity.advance(second * US, (agg,))
        entity.add(0, agg, second * US, None)
    assert entity.size() <= agg.buckets + 1
    assert entity.value(0, agg, entity.latest_us) == len([s for s in range(0, 10 * 3600, 7) if s >= 9 * 3600])


def test_an_event_older_than_the_window_is_refused_as_late() -> None:
    agg = WindowAgg.of(F.COUNT, 3600)
    entity = EntityWindows(1)
    entity.advance(10 * 3600 * US, (agg,))
    assert entity.add(0, agg, 10 * 3600 * US, None)
    assert not entity.add(0, agg, 8 * 3600 * US, None)
    assert entity.value(0, agg, entity.latest_us) == 1
