"""L1 -> L2 -> primary: the online read path, with read-through fill and write-through refresh."""

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

LOG = logging.getLogger(__name__)
T = TypeVar("T")
# Only reads "as of now" fill the caches: a historical read must not plant an old row as the latest one.
FILL_WINDOW_US = 1_000_000


class TieredOnlineStore:
    """Reads ask each cache in turn for the keys still missing, then the primary; rows found deeper fill the
    caches above. Writes go to the primary, then refresh every cache with each key's newest row. A cache that
    fails (Redis down) is skipped as a miss: reads bypass it rather than fail."""

    tier = "tiered"

    def __init__(self, primary: OnlineStore, caches: Sequence[OnlineStore]) -> None:
        self.primary = primary
        self.caches = list(caches)
        self.served: Counter[str] = Counter()
        self.cache_errors: Counter[str] = Counter()

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
            self._safely(cache, "put", lambda c=cache: c.put(table, list(newest.values())))

    def get(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues]:
        table.check_features(features)
        every_feature = list(table.features)
        fill = read_ts >= now_us() - FILL_WINDOW_US
        answers: dict[int, FeatureValues] = {}
        pending = list(range(len(keys)))
        for depth, store in enumerate([*self.caches, self.primary]):
            if not pending:
                break
            found, pending = self._ask(store, table, keys, pending, every_feature, read_ts)
            for index, values in found.items():
                answers[index] = FeatureValues(
                    values.key, values.feature_ts, {n: values.values.get(n) for n in features}, store.tier
                )
            if fill and found:
                rows = [EntityRow(v.key, v.feature_ts or 0, v.values) for v in found.values()]
                for cache in self.caches[:depth]:
                    self._safely(cache, "fill", lambda c=cache, r=rows: c.put(table, r))
        for index in pending:
            answers[index] = FeatureValues(keys[index], None, {}, "none")
        result = [answers[i] for i in range(len(keys))]
        self.served.update(answer.tier for answer in result)
        return result

    def _ask(
        self,
        store: OnlineStore,
        table: OnlineTable,
        keys: Sequence[EntityKey],
        pending: list[int],
        features: list[str],
        read_ts: int,
    ) -> tuple[dict[int, FeatureValues], list[int]]:
        asked = [keys[i] for i in pending]
        if store is self.primary:
            got = store.get(table, asked, features, read_ts)
        else:
            got = self._safely(store, "get", lambda: store.get(table, asked, features, read_ts))
            if got is None:
                return {}, pending
        found = {i: v for i, v in zip(pending, got, strict=True) if v.found}
        return found, [i for i in pending if i not in found]

    def _safely(self, cache: OnlineStore, action: str, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except Exception as error:  # a cache outage must never fail a request: log, count, carry on
            self.cache_errors[cache.tier] += 1
            LOG.warning("%s cache %s failed: %s", cache.tier, action, error)
            return None

    def teardown(self, table: OnlineTable) -> None:
        for cache in self.caches:
            self._safely(cache, "teardown", lambda c=cache: c.teardown(table))
        self.primary.teardown(table)

    def close(self) -> None:
        for store in [*self.caches, self.primary]:
            store.close()
