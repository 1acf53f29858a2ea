"""A counter summed in the process and added to Ray's counter once per export: what ma-ray's counters are in a
Ray worker.

``ray.util.metrics.Counter.inc`` checks its value, merges and checks its tags and crosses into Ray's core worker on
every call, about 5 us here; a prediction made one or two of them, on the replica's event loop. Summed in the
process, a count costs a lock and an addition, and reaches Ray's counter at most one export interval later (Ray's
worker reports its metrics every 10 s anyway).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from ma_ray.tagged_series import TaggedSeries

Increment = Callable[[float, dict[str, str]], None]  # Ray's ``Counter.inc(value, tags=...)``


class PendingCount:
    """What one tag set counted since the last export."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0


class _Bound:
    def __init__(self, pending: PendingCount, lock: threading.Lock) -> None:
        self._pending, self._lock = pending, lock

    def record(self, value: float) -> None:
        if value < 0:  # checked here, where the caller can see it, not in the export thread
            raise ValueError(f"a counter only goes up: got {value}")
        with self._lock:  # the feature lookup API and stream actors count from their threads too
            self._pending.value += value


class BatchedCounter(TaggedSeries[PendingCount, _Bound]):
    """``record(value, tags)`` adds to the tag set's pending count; ``export()`` hands each non-zero pending count
    to ``increment`` and starts it again from zero."""

    kind = "counter"

    def __init__(self, name: str, tag_keys: Sequence[str], increment: Increment) -> None:
        super().__init__(tag_keys)
        self.name = name
        self._increment = increment

    def _new_series(self) -> PendingCount:
        return PendingCount()

    def _bind(self, series: PendingCount) -> _Bound:
        return _Bound(series, self._lock)

    def export(self) -> None:
        """Hand the pending counts over: taken under the lock, handed over outside it. A count that fails to reach
        Ray is lost, as a failed ``inc`` would lose it."""
        with self._lock:
            due = []
            for key, pending in self._series.items():
                if pending.value > 0:
                    due.append((key, pending.value))
                    pending.value = 0.0
        for key, value in due:
            self._increment(value, dict(key))


__all__ = ["BatchedCounter", "Increment", "PendingCount"]
