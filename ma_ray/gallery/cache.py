"""The serving side's alias-resolution cache: short TTL (the seed accepts a brief inconsistency window), and
invalidated at once by the alias-change broadcast. A resolution that raced an invalidation is not cached."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ma_ray.gallery.broadcast import AliasChange

Key = tuple[str, str]


class AliasCache:
    def __init__(
        self, resolve: Callable[[str, str], int], ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._resolve, self.ttl_s, self._clock = resolve, ttl_s, clock
        self._entries: dict[Key, tuple[int, float]] = {}
        self._generation: dict[Key, int] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = self.invalidations = 0

    def get(self, model: str, alias: str) -> int:
        key = (model, alias)
        entry = self._entries.get(key)
        if entry is not None and entry[1] > self._clock():
            self.hits += 1
            return entry[0]
        self.misses += 1
        generation = self._generation.get(key, 0)
        version = self._resolve(model, alias)
        with self._lock:
            if self._generation.get(key, 0) == generation:
                self._entries[key] = (version, self._clock() + self.ttl_s)
        return version

    def invalidate(self, model: str, alias: str) -> None:
        key = (model, alias)
        with self._lock:
            self._generation[key] = self._generation.get(key, 0) + 1
            self._entries.pop(key, None)
            self.invalidations += 1

    def on_change(self, change: AliasChange) -> None:
        """The broadcast handler."""
        self.invalidate(change.model, change.alias)

    def clear(self) -> None:
        with self._lock:
            for key in self._entries:
                self._generation[key] = self._generation.get(key, 0) + 1
            self._entries.clear()
