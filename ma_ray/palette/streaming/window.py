"""Bucketed sliding windows per entity, driven by event time only.

Each aggregation keeps, per entity, one accumulator per time bucket (1 minute for windows up to 2 hours,
1 hour up to 7 days, 1 day beyond), so an entity costs at most ``window / bucket`` accumulators per
aggregation however many events it has. The value *as of* instant ``t`` (epoch microseconds) aggregates the
events with ``lo(t) <= ts <= t`` where ``lo(t) = bucket_start(t) + bucket - window``: the last
``window / bucket`` buckets, the newest one partial. At a bucket boundary this is exactly the batch pipeline's
``[end - window, end)`` (``t = end - 1µs``). Buckets older than the widest window of the newest event seen
for the entity are dropped; an event that old can never count again and is reported as late.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ma_ray.palette.catalog import AggregationFunction
from ma_ray.palette.pipelines import MICROS_PER_SECOND

F = AggregationFunction


def bucket_seconds(window_s: int) -> int:
    """The bucket width of a window: 1 min up to 2 h, 1 h up to 7 d, 1 d beyond; always divides the window."""
    width = 60 if window_s <= 7200 else 3600 if window_s <= 7 * 86400 else 86400
    return math.gcd(window_s, width)


@dataclass(frozen=True)
class WindowAgg:
    """One aggregation's window: function, window and bucket widths in microseconds."""

    function: AggregationFunction
    window_us: int
    bucket_us: int

    @classmethod
    def of(cls, function: AggregationFunction, window_s: int) -> WindowAgg:
        return cls(function, window_s * MICROS_PER_SECOND, bucket_seconds(window_s) * MICROS_PER_SECOND)

    @property
    def buckets(self) -> int:
        return self.window_us // self.bucket_us

    def lowest_bucket(self, as_of_us: int) -> int:
        """The oldest bucket index inside the window as of ``as_of_us``."""
        return as_of_us // self.bucket_us - self.buckets + 1

    def lower_bound_us(self, as_of_us: int) -> int:
        """``lo(t)``: the first event time the window as of ``as_of_us`` includes."""
        return self.lowest_bucket(as_of_us) * self.bucket_us


# ---- accumulators: one per (entity, aggregation, bucket) -----------------------------------------------------
def new_acc(function: AggregationFunction) -> Any:
    if function is F.COUNT:
        return 0
    if function in (F.SUM, F.MEAN):
        return [0, 0]
    if function is F.DISTINCT_COUNT:
        return set()
    return None  # min, max, last: no value yet


def add(function: AggregationFunction, acc: Any, value: Any, ts: int) -> Any:
    """The accumulator with one value added (``value`` is the input; None for a plain count)."""
    if function is F.COUNT:
        return acc + 1
    if function in (F.SUM, F.MEAN):
        acc[0] += value
        acc[1] += 1
        return acc
    if function is F.MIN:
        return value if acc is None or value < acc else acc
    if function is F.MAX:
        return value if acc is None or value > acc else acc
    if function is F.LAST:
        return (ts, value) if acc is None or (ts, value) > tuple(acc) else acc
    acc.add(value)  # distinct_count
    return acc


def merge(function: AggregationFunction, accs: Iterable[Any]) -> Any:
    """Accumulators of several buckets merged into one (never mutates its inputs)."""
    total = new_acc(function)
    for acc in accs:
        if function is F.COUNT:
            total += acc
        elif function in (F.SUM, F.MEAN):
            total = [total[0] + acc[0], total[1] + acc[1]]
        elif function is F.DISTINCT_COUNT:
            total = total | acc
        elif acc is not None:
            total = acc if total is None else _pick(function, total, acc)
    return total


def _pick(function: AggregationFunction, a: Any, b: Any) -> Any:
    if function is F.MIN:
        return min(a, b)
    if function is F.MAX:
        return max(a, b)
    return max(tuple(a), tuple(b))  # last: the latest (ts, value), ties to the largest value


def result(function: AggregationFunction, acc: Any) -> Any:
    """The feature value of a merged accumulator, as the batch pipeline's ``finalize`` gives it."""
    if function in (F.COUNT,):
        return acc
    if function is F.SUM:
        return acc[0] if acc[1] else None
    if function is F.MEAN:
        return acc[0] / acc[1] if acc[1] else None
    if function is F.DISTINCT_COUNT:
        return len(acc)
    if function is F.LAST:
        return None if acc is None else acc[1]
    return acc


class EntityWindows:
    """One entity's state: the newest event time seen and, per aggregation, accumulators by bucket index."""

    __slots__ = ("buckets", "latest_us")

    def __init__(self, n_aggs: int, latest_us: int = -(2**62)) -> None:
        self.latest_us = latest_us
        self.buckets: list[dict[int, Any]] = [{} for _ in range(n_aggs)]

    def add(self, i: int, agg: WindowAgg, ts: int, value: Any) -> bool:
        """Add one event's input to aggregation ``i``; False (nothing changed) if it is too old to count."""
        bucket = ts // agg.bucket_us
        if bucket < agg.lowest_bucket(self.latest_us):
            return False
        per = self.buckets[i]
        acc = per.get(bucket)
        per[bucket] = add(agg.function, new_acc(agg.function) if acc is None else acc, value, ts)
        return True

    def advance(self, ts: int, aggs: tuple[WindowAgg, ...]) -> None:
        """Move the entity's clock to ``ts`` if newer, dropping buckets that left every window."""
        if ts <= self.latest_us:
            return
        self.latest_us = ts
        for agg, per in zip(aggs, self.buckets, strict=True):
            if len(per) > agg.buckets:
                low = agg.lowest_bucket(ts)
                for bucket in [b for b in per if b < low]:
                    del per[bucket]

    def value(self, i: int, agg: WindowAgg, as_of_us: int) -> Any:
        """Aggregation ``i`` over ``[lo(as_of), as_of]`` (``as_of`` at or after the newest event)."""
        low = agg.lowest_bucket(as_of_us)
        high = as_of_us // agg.bucket_us
        per = self.buckets[i]
        return result(agg.function, merge(agg.function, (acc for b, acc in per.items() if low <= b <= high)))

    def size(self) -> int:
        return sum(len(per) for per in self.buckets)
