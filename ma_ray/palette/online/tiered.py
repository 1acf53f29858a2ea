"""L1 -> L2 -> primary: the online read path, with read-through fill, write-through refresh and a circuit
breaker per backend. It is also the one write path for every writer of online values (stream aggregation, the
batch Datasink and bulk loads, backfills, prunes): the primary first, then every cache refreshed (see
`ma_ray.palette.online.caches`), so no reader sees a value older than one already written, beyond the L1 TTL of
other processes (the seed's 100 ms)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Generator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from ma_ray.circuit_breaker import CircuitBreaker
from ma_ray.palette.online.base import (
    CacheLayer,
    CacheRead,
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
# The layer reported for a key no backend could answer because one was failing (not merely missing).
UNAVAILABLE = "unavailable"
# Refreshes owed to a failing cache are kept per key up to this many per table; past it the table's whole cache
# is cleared once the cache is back (cheaper than remembering every key of a long outage, and as correct).
MAX_OWED_KEYS = 100_000
# One step of a read's walk down the layers: the layer's depth, the layer, the keys asked of it and the features
# wanted.
WalkStep = tuple[int, OnlineStore, Sequence[EntityKey], Sequence[str]]
# A walk's outcome: the answers (None where missing), the indexes still missing, whether the primary failed.
WalkResult = tuple[list[FeatureValues | None], list[int], bool]
# The caches' walk of several reads (`TieredOnlineStore._cache_walks`): yields a cache's depth and the reads to ask of
# it, is sent their answers (None when the cache failed), returns each read's answers.
CacheWalk = Generator[
    tuple[int, list[CacheRead]], list[list[FeatureValues | None]] | None, list[list[FeatureValues | None]]
]


class TieredOnlineStore(OnlineStore):
    """Reads ask each cache in turn for the keys still missing, then the primary; rows found deeper fill the
    caches above. Writes go to the primary, then refresh every cache with each key's newest row.

    Each backend has a circuit breaker. A failing cache (Redis down) is bypassed; a failing primary (Cassandra
    down) leaves the keys the caches could not answer marked ``unavailable`` so the caller serves defaults.
    Reads never raise for a backend outage; writes to the primary do (a load must know it failed)."""

    layer = "tiered"

    def __init__(
        self,
        primary: OnlineStore,
        caches: Sequence[CacheLayer],
        breakers: dict[str, CircuitBreaker] | None = None,
    ) -> None:
        self.primary = primary
        self.caches = list(caches)
        self.breakers = breakers or {}
        for store in [*self.caches, primary]:
            self.breakers.setdefault(store.layer, CircuitBreaker(store.layer))
        self.served: Counter[str] = Counter()
        self.local = all(store.local for store in [*self.caches, primary])
        self.errors: Counter[str] = Counter()
        self._owed: dict[str, dict[str, OwedRefresh]] = {cache.layer: {} for cache in self.caches}
        self._owed_lock = threading.Lock()  # writer threads share the store (Datasink tasks, actor threads)
        # Fills of networked caches after an awaited read, in order, off the reader's path (`get_uncached_async`).
        self._filler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-fill")

    def update(self, table: OnlineTable) -> None:
        self.primary.update(table)
        for cache in self.caches:
            cache.update(table)

    def put(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        """The primary takes the rows (raising if it cannot: a writer must know), then each cache is refreshed
        with every key's newest row. A cache that cannot be refreshed is owed it: retried on the next write or
        `sync_caches`, through its breaker (the half-open probe included), so it is never left older."""
        self.primary.put(table, rows)
        newest: dict[EntityKey, EntityRow] = {}
        for row in rows:
            if row.key not in newest or newest[row.key].feature_ts < row.feature_ts:
                newest[row.key] = row
        with self._owed_lock:
            for cache in self.caches:
                self._owed[cache.layer].setdefault(table.name, OwedRefresh(table)).add(newest.values())
        self.sync_caches()

    def sync_caches(self) -> int:
        """Apply the refreshes owed to caches that can take them now; returns how many tables are still owed.
        Refreshes are ordered by feature timestamp in the cache, so threads applying theirs in any order agree."""
        for cache in self.caches:
            with self._owed_lock:
                taken, self._owed[cache.layer] = self._owed[cache.layer], {}
            for name, refresh in list(taken.items()):
                if not self._guarded(cache, "refresh", partial(refresh.apply, cache)):
                    break  # the cache is failing or its breaker is open: the rest waits too
                del taken[name]
            with self._owed_lock:  # what could not be applied is owed still, with what was written meanwhile
                owed = self._owed[cache.layer]
                for name, refresh in taken.items():
                    owed[name] = refresh.merged(owed.get(name))
        with self._owed_lock:
            return sum(len(owed) for owed in self._owed.values())

    def get(
        self,
        table: OnlineTable,
        keys: Sequence[EntityKey],
        features: Sequence[str],
        read_ts: int,
        *,
        caches: bool = True,
    ) -> list[FeatureValues]:
        """Every key answered, by the first layer that holds it. ``caches=False``: the caller already asked
        `get_cached` about these keys; read the primary only (filling the caches)."""
        table.check_features(features)
        depths = range(0 if caches else len(self.caches), len(self.caches) + 1)
        answers, pending, primary_failed = self._walk(table, keys, features, read_ts, depths)
        if not pending:
            return answers  # type: ignore[return-value]  # every index is answered
        missing_tier = UNAVAILABLE if primary_failed else "none"
        self.served[missing_tier] += len(pending)
        for index in pending:
            answers[index] = FeatureValues(keys[index], None, {}, missing_tier)
        return answers  # type: ignore[return-value]  # every index is answered above

    def get_cached(self, reads: Sequence[CacheRead], read_ts: int) -> list[list[FeatureValues | None]]:
        """What the caches answer for each read (a table, its keys, the features wanted; deeper hits fill the caches
        above), None for every other key, for the caller to `get(..., caches=False)` under its deadline. Each cache
        is asked once for every read (Redis: one MGET for all of a request's feature groups) and answers within the
        serving deadline (an in-process dict, or a client whose read timeout is the deadline), so callers read them
        in their own thread."""
        walks = self._cache_walks(reads, read_ts)
        try:
            depth, asked = next(walks)
            while True:
                cache = self.caches[depth]
                depth, asked = walks.send(self._guarded(cache, "get", partial(cache.hits_many, asked, read_ts)))
        except StopIteration as walked:
            answers: list[list[FeatureValues | None]] = walked.value
            return answers

    async def get_cached_async(self, reads: Sequence[CacheRead], read_ts: int) -> list[list[FeatureValues | None]]:
        """`get_cached` for an event loop: an in-process cache answers at once, a networked one (Redis) is awaited,
        so the loop serves other requests during its one round trip."""
        walks = self._cache_walks(reads, read_ts)
        try:
            depth, asked = next(walks)
            while True:
                cache = self.caches[depth]
                hits = partial(cache.hits_many_async, asked, read_ts)
                depth, asked = walks.send(await self._guarded_async(cache, hits))
        except StopIteration as walked:
            answers: list[list[FeatureValues | None]] = walked.value
            return answers

    def _cache_walks(self, reads: Sequence[CacheRead], read_ts: int) -> CacheWalk:
        """The caches' walk of ``reads``: a single read's alone (most requests read one group), several in step."""
        return self._one_cache_walk(reads[0], read_ts) if len(reads) == 1 else self._walks_in_step(reads, read_ts)

    def _walks_in_step(self, reads: Sequence[CacheRead], read_ts: int) -> CacheWalk:
        """The caches' walks (`_walk_steps`) of every read, in step: each step yields a cache's depth and what the
        walks not yet done ask of it, and is sent their answers in that order (None when the cache failed).
        Returns each read's answers, None where the caches hold nothing. Every walk asks the caches in the same
        order and only stops early, so the walks still going are always at the same depth."""
        answers: list[list[FeatureValues | None]] = [[] for _ in reads]
        going: list[tuple[int, Generator[WalkStep, list[FeatureValues | None] | None, WalkResult], WalkStep]] = []

        def advance(index: int, walk: Generator[WalkStep, Any, WalkResult], got: Any) -> None:
            try:
                going.append((index, walk, walk.send(got)))
            except StopIteration as walked:
                answers[index] = walked.value[0]

        for index, (table, keys, features) in enumerate(reads):
            table.check_features(features)
            advance(index, self._walk_steps(table, keys, features, read_ts, range(len(self.caches))), None)
        while going:
            depth, asking = going[0][2][0], going
            got = yield depth, [(reads[index][0], step[2], step[3]) for index, _, step in asking]
            going = []
            for n, (index, walk, _) in enumerate(asking):
                advance(index, walk, None if got is None else got[n])
        return answers

    def _one_cache_walk(self, read: CacheRead, read_ts: int) -> CacheWalk:
        """The walk of a single read (`_walk_steps`), in `_walks_in_step`'s shape, without its bookkeeping."""
        table, keys, features = read
        table.check_features(features)
        walk = self._walk_steps(table, keys, features, read_ts, range(len(self.caches)))
        try:
            depth, _, asked, wanted = next(walk)
            while True:
                got = yield depth, [(table, asked, wanted)]
                depth, _, asked, wanted = walk.send(None if got is None else got[0])
        except StopIteration as walked:
            return [walked.value[0]]

    def _walk(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int, depths: range
    ) -> WalkResult:
        """`_walk_steps` with each layer asked in this thread."""
        steps = self._walk_steps(table, keys, features, read_ts, depths)
        try:
            depth, store, asked, wanted = next(steps)
            while True:
                hits = partial(self._hits, depth, table, asked, wanted, read_ts)
                depth, store, asked, wanted = steps.send(self._guarded(store, "get", hits))
        except StopIteration as walked:
            result: WalkResult = walked.value
            return result

    def _walk_steps(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int, depths: range
    ) -> Generator[WalkStep, list[FeatureValues | None] | None, WalkResult]:
        """Ask the layers at ``depths`` in turn for the keys still missing (each step yields the depth, the layer,
        the keys and the features to ask, and is sent the answers, None when the layer failed); rows found below the
        top fill the caches above. Returns the answers (None where missing), the missing indexes and whether the
        primary failed. One walk for every driver: `_walk` asks in this thread, `_cache_walks` drives one or several."""
        every_feature = list(table.features)
        whole_rows = set(features) == table.features.keys()  # rows read below the top need no projection
        read_started = self._fill_starts(read_ts)
        fill = bool(read_started)
        answers: list[FeatureValues | None] = [None] * len(keys)
        pending = list(range(len(keys)))
        primary_failed = False
        layers = [*self.caches, self.primary]
        for depth in depths:
            store = layers[depth]
            wanted = features if depth == 0 else every_feature  # only rows found below the top layer fill caches
            first_ask = len(pending) == len(keys)
            asked = keys if first_ask else [keys[i] for i in pending]
            got = yield depth, store, asked, wanted
            if got is None:
                primary_failed = store is self.primary
                continue
            still = [index for index, values in zip(pending, got, strict=True) if values is None]
            self.served[store.layer] += len(pending) - len(still)
            if fill and depth and len(still) < len(pending):
                found = [values for values in got if values is not None]
                for cache, started in zip(self.caches[:depth], read_started, strict=False):
                    self._guarded(cache, "fill", partial(cache.put, table, found, started))
            if first_ask and (depth == 0 or whole_rows):
                answers = got  # answered in place, None where still missing
            else:
                _place(answers, pending, got, None if depth == 0 or whole_rows else features)
            pending = still
            if not pending:
                break
        return answers, pending, primary_failed

    async def get_uncached_async(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues]:
        """`get(..., caches=False)` for an event loop: the primary's read awaited (Cassandra's with no thread
        between), the in-process cache filled at once and the others (Redis) on the store's fill thread, off the
        answer's path."""
        table.check_features(features)
        read_started = self._fill_starts(read_ts)
        primary, breaker = self.primary, self.breakers[self.primary.layer]
        got = None
        if breaker.allow():
            try:
                got = await primary.get_async(table, keys, list(table.features), read_ts)
            except Exception as error:  # a backend outage must never fail a read: log, count, carry on
                self._failed(primary, "get", error)
            else:
                breaker.record_success()
        if got is None:
            self.served[UNAVAILABLE] += len(keys)
            return [FeatureValues(key, None, {}, UNAVAILABLE) for key in keys]
        found = [values for values in got if values.feature_ts is not None]
        self.served[primary.layer] += len(found)
        self.served["none"] += len(got) - len(found)
        if read_started and found:
            self._fill(table, found, read_started)
        projected_on = None if set(features) == table.features.keys() else features  # whole rows were read
        return [_served(key, values, projected_on) for key, values in zip(keys, got, strict=True)]

    def _fill_starts(self, read_ts: int) -> list[float]:
        """Per cache, when a fill of a read at ``read_ts`` counts as read (a write may land any time after it, so
        its life counts from then); none when the read is historical: it must not plant an old row as the latest."""
        now = now_us()
        if read_ts < now - FILL_WINDOW_US:
            return []
        read_age_s = max(0, now - read_ts) / 1e6
        return [cache.read_started() - read_age_s for cache in self.caches]

    def _fill(self, table: OnlineTable, found: list[FeatureValues], read_started: list[float]) -> None:
        """Rows the primary answered into every cache: in-process ones now, the others on the fill thread."""
        for cache, started in zip(self.caches, read_started, strict=True):
            fill = partial(self._guarded, cache, "fill", partial(cache.put, table, found, started))
            if cache.local:
                fill()
            else:
                self._filler.submit(fill)

    def _hits(
        self, depth: int, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues | None]:
        """The answers of the layer at ``depth``, None for a key it does not hold."""
        if depth < len(self.caches):
            return self.caches[depth].hits(table, keys, features, read_ts)
        return [None if v.feature_ts is None else v for v in self.primary.get(table, keys, features, read_ts)]

    def _guarded(self, store: OnlineStore, action: str, call: Callable[[], T]) -> T | None:
        """Run a backend call through its breaker; None when the breaker is open or the call failed."""
        breaker = self.breakers[store.layer]
        if not breaker.allow():
            return None
        try:
            result = call()
        except Exception as error:  # a backend outage must never fail a read: log, count, carry on
            self._failed(store, action, error)
            return None
        breaker.record_success()
        return result

    async def _guarded_async(self, cache: CacheLayer, hits: Callable[[], Coroutine[Any, Any, T]]) -> T | None:
        """`_guarded` for a cache's awaited read: the coroutine is made only when the breaker lets it run."""
        breaker = self.breakers[cache.layer]
        if not breaker.allow():
            return None
        try:
            result = await hits()
        except Exception as error:  # a backend outage must never fail a read: log, count, carry on
            self._failed(cache, "get", error)
            return None
        breaker.record_success()
        return result

    def _failed(self, store: OnlineStore, action: str, error: Exception) -> None:
        self.breakers[store.layer].record_failure()
        self.errors[store.layer] += 1
        LOG.warning("%s %s failed: %s", store.layer, action, error)

    def prune(self, table: OnlineTable, keys: Sequence[EntityKey], before_ts: int) -> None:
        self.primary.prune(table, keys, before_ts)

    def breaker_states(self) -> dict[str, str]:
        return {layer: str(breaker.state) for layer, breaker in self.breakers.items()}

    def teardown(self, table: OnlineTable) -> None:
        for cache in self.caches:
            self._guarded(cache, "teardown", partial(cache.teardown, table))
        self.primary.teardown(table)

    def close(self) -> None:
        self._filler.shutdown(wait=True)  # fills in flight land before their caches close
        for store in [*self.caches, self.primary]:
            store.close()


def _place(
    answers: list[FeatureValues | None],
    pending: list[int],
    got: list[FeatureValues | None],
    projected_on: Sequence[str] | None,
) -> None:
    """Put the found answers of the ``pending`` indexes in place (projected on the asked features when read
    whole)."""
    for index, values in zip(pending, got, strict=True):
        if values is not None:
            answers[index] = values if projected_on is None else _projected(values, projected_on)


def _served(key: EntityKey, values: FeatureValues, projected_on: Sequence[str] | None) -> FeatureValues:
    """The primary's answer for ``key``: missing (``none``), or found, projected on the asked features."""
    if values.feature_ts is None:
        return FeatureValues(key, None, {}, "none")
    return values if projected_on is None else _projected(values, projected_on)


def _projected(values: FeatureValues, features: Sequence[str]) -> FeatureValues:
    return FeatureValues(
        values.key, values.feature_ts, {name: values.values.get(name) for name in features}, values.layer
    )


class OwedRefresh:
    """A cache refresh that has not reached its cache yet: the newest written row per key, or, past
    ``MAX_OWED_KEYS``, the whole table to clear."""

    def __init__(self, table: OnlineTable) -> None:
        self.table = table
        self.rows: dict[EntityKey, EntityRow] = {}
        self.clear_table = False

    def add(self, rows: Iterable[EntityRow]) -> None:
        if self.clear_table:
            return
        for row in rows:
            held = self.rows.get(row.key)
            if held is None or held.feature_ts < row.feature_ts:
                self.rows[row.key] = row
        if len(self.rows) > MAX_OWED_KEYS:
            self.clear_table, self.rows = True, {}

    def merged(self, newer: OwedRefresh | None) -> OwedRefresh:
        """This refresh with one owed after it, for the same table."""
        if newer is not None:
            self.clear_table = self.clear_table or newer.clear_table
            self.add(newer.rows.values())
        return self

    def apply(self, cache: CacheLayer) -> bool:
        if self.clear_table:
            cache.teardown(self.table)
        else:
            cache.refresh(self.table, list(self.rows.values()))
        return True
