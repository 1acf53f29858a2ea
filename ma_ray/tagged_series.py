"""What ma-ray's in-process instruments share (`ma_ray.gauge_histogram`, `ma_ray.batched_counter`): one series per
tag set, made with its bound recorder the first time the tag set is used, under the lock their export takes too."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

Tags = tuple[tuple[str, str], ...]


class BoundRecorder(Protocol):
    def record(self, value: float) -> None: ...


S = TypeVar("S")  # one tag set's series
B = TypeVar("B", bound=BoundRecorder)


class TaggedSeries(Generic[S, B]):
    """``bound(tags)`` checks the tags once per tag set and keeps the recorder; a subclass says how a series starts
    (``_new_series``) and how a recorder writes to it under ``self._lock`` (``_bind``)."""

    kind = "instrument"  # named in errors

    def __init__(self, tag_keys: Sequence[str]) -> None:
        self.tag_keys = tuple(tag_keys)
        self._series: dict[Tags, S] = {}
        self._bound: dict[Tags, B] = {}
        self._lock = threading.Lock()

    def _new_series(self) -> S:
        raise NotImplementedError

    def _bind(self, series: S) -> B:
        raise NotImplementedError

    def bound(self, tags: dict[str, str]) -> B:
        key = tuple(sorted(tags.items()))
        bound = self._bound.get(key)
        if bound is None:
            if sorted(tags) != sorted(self.tag_keys):
                raise ValueError(f"tags {sorted(tags)} are not the {self.kind}'s tag keys {sorted(self.tag_keys)}")
            with self._lock:
                series = self._series.setdefault(key, self._new_series())
            bound = self._bound[key] = self._bind(series)
        return bound

    def record(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.bound(tags or {}).record(value)


__all__ = ["BoundRecorder", "TaggedSeries", "Tags"]
