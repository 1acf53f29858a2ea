"""L1 -> L2 -> primary: the online read path, with read-through fill, write-through refresh and a circuit
breaker per backend."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypeVar

from ma_ray.palette.online.base import (
    EntityKey,
    EntityRow,
    FeatureValues,
    OnlineStore,
    OnlineTable,
    now_us,
)
from ma_ray.serving.circuit_breaker import CircuitBreaker

LOG = logging.getLogger(__name__)
T = TypeVar("T")
# Only reads "as of now" fill the caches: a historical read must not plant an old row as the latest one.
FILL_WINDOW_US = 1_000_000
# The tier reported for a key no backend could answer because one was failing (not merely missing).
UNAVAILABLE = "unavailable"


class TieredOnlineStore:
    """Reads ask each cache in turn for the keys still missing, then the primary; rows found deeper fill the
    caches above. Writes go to the primary, then refresh every cache with each key's newest row.

    Each backend has a circuit breaker. A failing cache (Redis down) is bypassed; a failing primary (Cassandra
    down) leaves the keys the caches could not answer marked ``unavailable`` so the caller serves defaults.
    Reads never raise for a backend outage; writes to the primary do (a load must know it failed)."""

    tier = "tiered"

    def __init__(
        self,
        primary: OnlineStore,
        caches: Sequence[OnlineStore],
        breakers: dict[str, CircuitBreaker] | None = None,
    ) -> None:
        self.primary = primary
        self.caches = list(caches)
        self.breakers = breakers or {}
        for store in [*self.caches, primary]:
            self.breakers.setdefault(store.tier, CircuitBreaker(store.tier))
        self.served: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def update(self, table: OnlineTable) -> None:
        self.primary.update(table)
        for cache in self.caches:
            cache.update(table)

    def put(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        self.primary.put(table, rows)
        newest: dict[EntityKey, EntityRow] = {}
        for row in rows:
            if row.key not in newest or newest[row.key].feature_ts < row.feature_ts:
                newest[row.key] = row
        for cache in self.caches:
            self._guarded(cache, "put", lambda c=cache: c.put(table, list(newest.values())))

    def get(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues]:
        table.check_features(features)
        every_feature = list(table.features)
        fill = read_ts >= now_us() - FILL_WINDOW_US
        answers: dict[int, FeatureValues] = {}
        pending = list(range(len(keys)))
        primary_failed = False
        for depth, store in enumerate([*self.caches, self.primary]):
            if not pending:
                break
            asked = [keys[i] for i in pending]
            got = self._guarded(store, "get", lambda s=store, a=asked: s.get(table, a, every_feature, read_ts))
            if got is None:
                primary_failed = store is self.primary
                continue
            found = {i: v for i, v in zip(pending, got, strict=True) if v.found}
            pending = [i for i in pending if i not in found]
            for index, values in found.items():
                projected = {name: values.values.get(name) for name in features}
                answers[index] = FeatureValues(values.key, values.feature_ts, projected, store.tier)
            if fill and found:
                rows = [EntityRow(v.key, v.feature_ts or 0, v.values) for v in found.values()]
                for cache in self.caches[:depth]:
                    self._guarded(cache, "fill", lambda c=cache, r=rows: c.put(table, r))
        missing_tier = UNAVAILABLE if primary_failed else "none"
        for index in pending:
            answers[index] = FeatureValues(keys[index], None, {}, missing_tier)
        result = [answers[i] for i in range(len(keys))]
        self.served.update(answer.tier for answer in result)
        return result

    def _guarded(self, store: OnlineStore, action: str, call: Callable[[], T]) -> T | None:
        """Run a backend call through its breaker; None when the breaker is open or the call failed."""
        breaker = self.breakers[store.tier]
        if not breaker.allow():
            return None
        try:
            result = call()
        except Exception as error:  # a backend outage must never fail a read: log, count, carry on
            breaker.record_failure()
            self.errors[store.tier] += 1
            LOG.warning("%s %s failed: %s", store.tier, action, error)
            return None
        breaker.record_success()
        return result

    def prune(self, table: OnlineTable, keys: Sequence[EntityKey], before_ts: int) -> None:
        self.primary.prune(table, keys, before_ts)

    def breaker_states(self) -> dict[str, str]:
        return {tier: str(breaker.state) for tier, breaker in self.breakers.items()}

    def teardown(self, table: OnlineTable) -> None:
        for cache in self.caches:
            self._guarded(cache, "teardown", lambda c=cache: c.teardown(table))
        self.primary.teardown(table)

    def close(self) -> None:
        for store in [*self.caches, self.primary]:
            store.close()
