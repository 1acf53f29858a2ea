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

Tags = tuple[tuple[str, str], ...]
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


class BatchedCounter:
    """``record(value, tags)`` adds to the tag set's pending count; ``export()`` hands each non-zero pending count
    to ``increment`` and starts it again from zero."""

    def __init__(self, name: str, tag_keys: Sequence[str], increment: Increment) -> None:
        self.name = name
        self.tag_keys = tuple(tag_keys)
        self._increment = increment
        self._pending: dict[Tags, PendingCount] = {}
        self._bound: dict[Tags, _Bound] = {}
        self._lock = threading.Lock()

    def bound(self, tags: dict[str, str]) -> _Bound:
        key = tuple(sorted(tags.items()))
        bound = self._bound.get(key)
        if bound is None:
            if sorted(tags) != sorted(self.tag_keys):
                keys = sorted(self.tag_keys)
                raise ValueError(f"{self.name}: tags {sorted(tags)} are not the counter's tag keys {keys}")
            with self._lock:
                pending = self._pending.setdefault(key, PendingCount())
            bound = self._bound[key] = _Bound(pending, self._lock)
        return bound

    def record(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.bound(tags or {}).record(value)

    def export(self) -> None:
        """Hand the pending counts over: taken under the lock, handed over outside it. A count that fails to reach
        Ray is lost, as a failed ``inc`` would lose it."""
        with self._lock:
            due = []
            for key, pending in self._pending.items():
                if pending.value > 0:
                    due.append((key, pending.value))
                    pending.value = 0.0
        for key, value in due:
            self._increment(value, dict(key))


__all__ = ["BatchedCounter", "Increment", "PendingCount"]
