"""A histogram counted in the process and exported as Prometheus' three series of it, ``<name>_bucket{le}``,
``<name>_sum`` and ``<name>_count``, each a gauge of the running total: what ma-ray's histograms are in a Ray
worker.

Ray's metrics agent rebuilds every observation of a worker's ``ray.util.metrics.Histogram`` as one OpenTelemetry
record in Python (``record_histogram_aggregated_batch``: a loop over each bucket's count), about 18 us of the
agent's CPU each: the five or so observations of a prediction under load cost the node more than its XGBoost
walk. A gauge costs the agent one record per series and export, whatever the traffic. The series keep the names
Prometheus gives a histogram's, so ``histogram_quantile(0.99, sum by (le) (rate(ray_<name>_bucket[5m])))`` reads
them as it reads Ray's own; the sum is exact (Ray's agent rebuilds it from bucket midpoints). Each worker's series
carry Ray's ``WorkerId`` label, so replicas on one node add up rather than overwrite each other.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Protocol

from ma_ray.tagged_series import TaggedSeries


class Gauge(Protocol):
    def set(self, value: float, tags: dict[str, str]) -> None: ...


GaugeFactory = Callable[[str, str, Sequence[str]], Gauge]  # (name, description, tag keys) -> gauge


def le_label(bound: float) -> str:
    """A bucket's ``le`` as Prometheus' clients write it: ``0.0001``, ``1.0``, ``+Inf``."""
    return "+Inf" if bound == math.inf else repr(float(bound))


@dataclass
class BucketCounts:
    """Observations of one tag set: a count per bucket (the last one past every bound), their sum, and whether
    any arrived since the last export."""

    bounds: Sequence[float]
    counts: list[int] = field(init=False)
    total: float = 0.0
    changed: bool = False

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le is inclusive: a value at a bound counts in it
        self.total += value
        self.changed = True

    def cumulative(self) -> list[int]:
        """Observations at or below each bound, then all of them (``le="+Inf"``)."""
        running, out = 0, []
        for count in self.counts:
            running += count
            out.append(running)
        return out


class _Bound:
    def __init__(self, counts: BucketCounts, lock: threading.Lock) -> None:
        self._observe, self._lock = counts.observe, lock

    def record(self, value: float) -> None:
        with self._lock:  # the feature lookup API records from its threads too
            self._observe(value)


class GaugeHistogram(TaggedSeries[BucketCounts, _Bound]):
    """``record(value, tags)`` counts an observation in the process; ``export()`` sets the gauges of every tag
    set observed since the last export."""

    kind = "histogram"

    def __init__(
        self, name: str, description: str, boundaries: Sequence[float], tag_keys: Sequence[str], gauges: GaugeFactory
    ) -> None:
        if not boundaries or any(b <= a for a, b in pairwise(boundaries)):
            raise ValueError(f"{name}: histogram boundaries must be given in increasing order, got {boundaries}")
        self.bounds = [float(b) for b in boundaries if b != math.inf]
        self._le = [le_label(b) for b in [*self.bounds, math.inf]]
        super().__init__(tag_keys)
        self._buckets = gauges(f"{name}_bucket", description, (*self.tag_keys, "le"))
        self._sum = gauges(f"{name}_sum", description, self.tag_keys)
        self._count = gauges(f"{name}_count", description, self.tag_keys)

    def _new_series(self) -> BucketCounts:
        return BucketCounts(self.bounds)

    def _bind(self, series: BucketCounts) -> _Bound:
        return _Bound(series, self._lock)

    def export(self) -> None:
        """Set the gauges of each tag set with new observations: taken under the lock, set outside it."""
        with self._lock:
            changed = []
            for key, counts in self._series.items():
                if counts.changed:
                    changed.append((key, counts.cumulative(), counts.total))
                    counts.changed = False
        for key, cumulative, total in changed:
            tags = dict(key)
            for le, count in zip(self._le, cumulative, strict=True):
                self._buckets.set(count, {**tags, "le": le})
            self._sum.set(total, tags)
            self._count.set(cumulative[-1], tags)


__all__ = ["BucketCounts", "GaugeFactory", "GaugeHistogram", "le_label"]
