"""The tier-aware model cache of a serving replica (the seed's "Virtual Model Sharding" loading and eviction
policies), as pure bookkeeping: which models are resident, and which to evict to admit another.

Eviction is by a memory budget (the seed's "model cache size: 80% of heap"), lowest tier first, least recently
used within a tier; tier-1 models are never evicted during peak; no model is evicted within its grace period
(5 minutes) after its last use. When nothing may be evicted, admission is refused: the caller sheds or routes
the request elsewhere, the replica never runs out of memory. The clock and the peak signal are injected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum


class LoadingPolicy(StrEnum):
    EAGER = "eager"  # tier 1: loaded when the replica starts
    LAZY = "lazy"  # tiers 3-4: loaded on the first request
    PREEMPTIVE = "preemptive"  # loaded ahead of forecast traffic


def loading_policy(tier: int, forecast_qps: float = 0.0) -> LoadingPolicy:
    """The seed's rule: tier 1 eager; tiers 3-4 lazy; tier 2 preemptive when traffic is forecast, else lazy."""
    if tier == 1:
        return LoadingPolicy.EAGER
    if tier == 2 and forecast_qps > 0:
        return LoadingPolicy.PREEMPTIVE
    return LoadingPolicy.LAZY


class CacheFullError(RuntimeError):
    """No room can be made for a model without breaking a pin or a grace period."""


@dataclass
class CachedModel:
    model_id: str
    tier: int
    size_bytes: int
    loaded_at: float
    last_used: float


class TierAwareModelCache:
    def __init__(
        self,
        budget_bytes: int,
        grace_period_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        is_peak: Callable[[], bool] = lambda: True,
    ) -> None:
        if budget_bytes <= 0 or grace_period_s < 0:
            raise ValueError("a model cache needs budget_bytes > 0 and grace_period_s >= 0")
        self.budget_bytes = budget_bytes
        self.grace_period_s = grace_period_s
        self._clock = clock
        self._is_peak = is_peak
        self._models: dict[str, CachedModel] = {}
        self._lock = threading.Lock()
        self.evictions: list[str] = []

    @property
    def used_bytes(self) -> int:
        return sum(m.size_bytes for m in self._models.values())

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._models

    def resident(self) -> list[str]:
        return sorted(self._models)

    def touch(self, model_id: str) -> bool:
        """Record a use; False if the model is not resident (the caller loads it, then calls `admit`)."""
        with self._lock:
            entry = self._models.get(model_id)
            if entry is None:
                return False
            entry.last_used = self._clock()
            return True

    def plan_admission(self, tier: int, size_bytes: int) -> list[str]:
        """The models to evict (in order) to fit a new one; raises CacheFullError when it cannot fit."""
        if size_bytes > self.budget_bytes:
            raise CacheFullError(f"a {size_bytes}-byte model exceeds the whole cache budget ({self.budget_bytes})")
        with self._lock:
            free = self.budget_bytes - self.used_bytes
            victims = []
            for entry in self._eviction_order():
                if free >= size_bytes:
                    break
                victims.append(entry.model_id)
                free += entry.size_bytes
            if free < size_bytes:
                raise CacheFullError(
                    f"cannot make {size_bytes} bytes of room: the rest is pinned (tier 1 at peak) or within its "
                    f"{self.grace_period_s:.0f}s grace period"
                )
            return victims

    def _eviction_order(self) -> Iterable[CachedModel]:
        """Evictable models, lowest tier (highest number) first, least recently used first within a tier."""
        now, peak = self._clock(), self._is_peak()
        candidates = [
            m for m in self._models.values() if not (m.tier == 1 and peak) and now - m.last_used >= self.grace_period_s
        ]
        return sorted(candidates, key=lambda m: (-m.tier, m.last_used))

    def admit(self, model_id: str, tier: int, size_bytes: int) -> list[str]:
        """Make room (evicting per policy) and record the model as resident; returns the evicted ids."""
        if model_id in self._models:
            self.touch(model_id)
            return []
        victims = self.plan_admission(tier, size_bytes)
        with self._lock:
            for victim in victims:
                self._models.pop(victim, None)
            self.evictions.extend(victims)
            now = self._clock()
            self._models[model_id] = CachedModel(model_id, tier, size_bytes, now, now)
        return victims

    def remove(self, model_id: str) -> None:
        with self._lock:
            self._models.pop(model_id, None)


def preemptive_loads(
    forecast_qps: dict[str, float],
    resident: Iterable[str],
    sizes: dict[str, int],
    free_bytes: int,
    min_qps: float = 1.0,
) -> list[str]:
    """Models to load ahead of traffic: the highest forecast first, those not resident, while they fit."""
    loaded = set(resident)
    chosen, room = [], free_bytes
    for model_id, qps in sorted(forecast_qps.items(), key=lambda item: -item[1]):
        if qps < min_qps or model_id in loaded or sizes.get(model_id, room + 1) > room:
            continue
        chosen.append(model_id)
        room -= sizes[model_id]
    return chosen
