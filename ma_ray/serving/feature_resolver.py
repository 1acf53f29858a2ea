"""The feature resolver: entity keys + feature refs in, feature values out, for online predictions.

One read timestamp for every feature of a request (the seed's snapshot isolation); one batched read per
feature group; a deadline (the seed's 100 ms request timeout) after which defaults are served; a circuit
breaker that stops calling a failing store; derived features computed with the same compiled DSL as training.
Values are never silently expired: a value older than its group's TTL is served, flagged ``stale``.
When a streaming group's aggregation actors fall behind its lag SLA, its batch values are read instead
(the seed's "fallback to batch values") and the resolution names the group in ``stream_fallback``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from operator import attrgetter, itemgetter
from typing import Any, Protocol, cast

from ma_ray.circuit_breaker import CircuitBreaker
from ma_ray.metrics import after_answer
from ma_ray.palette import BASIS_PREFIX, FeatureRepository, FeatureType
from ma_ray.palette.dsl import CompiledExpression, compile_expression
from ma_ray.palette.online import (
    UNAVAILABLE,
    CacheRead,
    EntityKey,
    FeatureValues,
    OnlineStore,
    OnlineTable,
    TieredOnlineStore,
    now_us,
)
from ma_ray.row_dicts import row_to_dict
from ma_ray.serving.feature_metrics import FeatureMetrics, LookupRecord
from ma_ray.serving.resolution import MetaColumn, Resolution

BREAKER_GAUGE_INTERVAL_S = 1.0  # how late a breaker's gauge may follow its state when lookups go well
# A store read in flight: on the resolver's pool (`resolve`) or on the event loop (`resolve_async`).
ReadOutcome = concurrent.futures.Future[list[FeatureValues]] | asyncio.Future[list[FeatureValues]]


class UnknownReferenceError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class EntityKeyError(ValueError):
    """A request row lacks a join key that a requested feature needs, or has one of the wrong type."""


class LagMonitor(Protocol):
    def lagging(self, catalog: str, group: str, sla_s: float) -> bool: ...


@dataclass(frozen=True)
class StoredFeature:
    table: OnlineTable
    name: str
    join_key: str
    default: Any
    lag_sla_s: float | None = None  # streaming groups only


@dataclass(frozen=True)
class DerivedFeature:
    expression: CompiledExpression
    default: Any


class ServingCatalog:
    """The parts of a catalog the resolver needs, compiled once: stored refs, derived refs, request fields."""

    def __init__(self, repo: FeatureRepository) -> None:
        self.stored: dict[str, StoredFeature] = {}
        self.derived: dict[str, DerivedFeature] = {}
        self.basis: dict[str, FeatureType] = {}
        types = {ref: feature.type for ref, (_, feature) in repo.refs().items()}
        for ref, (group, feature) in repo.refs().items():
            if ref.startswith(BASIS_PREFIX):
                self.basis[ref] = feature.type
            elif feature.expression:
                self.derived[ref] = DerivedFeature(compile_expression(feature.expression, types), feature.default)
            else:
                table = OnlineTable.of(repo, group)
                join_key = repo.entity(group.entity or "").join_key
                self.stored[ref] = StoredFeature(table, feature.name, join_key, feature.default, group.stream_lag_sla_s)

    def tables(self) -> list[OnlineTable]:
        return list({s.table.name: s.table for s in self.stored.values()}.values())

    def fallback_tables(self) -> list[OnlineTable]:
        """The batch-value tables of streaming groups (create them before serving, so a fallback can read)."""
        streaming = {s.table.name: s.table for s in self.stored.values() if s.lag_sla_s is not None}
        return [table.batch_fallback() for table in streaming.values()]

    def check(self, refs: Sequence[str]) -> None:
        known = self.stored.keys() | self.derived.keys() | self.basis.keys()
        unknown = [ref for ref in refs if ref not in known]
        if unknown:
            raise UnknownReferenceError(f"unknown feature reference(s): {', '.join(unknown)}")

    def coerce_request_fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A request row with its request fields in their catalog types (ISO text -> datetime for timestamps);
        a field of the wrong type raises ValueError naming it."""
        coerced = dict(row)
        for ref, kind in self.basis.items():
            name = ref[len(BASIS_PREFIX) :]
            if coerced.get(name) is not None:
                coerced[name] = _coerce(name, kind, coerced[name])
        return coerced

    def request_inputs(self, refs: Sequence[str]) -> tuple[dict[str, FeatureType], list[str]]:
        """What a request row must carry for ``refs``: field name -> type (entity join keys, then the request
        fields that the refs or their derived features read), and which of them are join keys (required)."""
        keys: dict[str, FeatureType] = {}
        for ref in sorted(self.stored_needs(refs)):
            stored = self.stored[ref]
            keys.setdefault(stored.join_key, stored.table.key_type)
        fields: dict[str, FeatureType] = {}
        pending, seen = list(refs), set()
        while pending:
            ref = pending.pop()
            if ref in seen:
                continue
            seen.add(ref)
            if ref in self.basis:
                fields[ref[len(BASIS_PREFIX) :]] = self.basis[ref]
            elif ref in self.derived:
                pending.extend(self.derived[ref].expression.references)
        return {**keys, **dict(sorted(fields.items()))}, list(keys)

    def stored_needs(self, refs: Sequence[str]) -> set[str]:
        """Stored refs needed for ``refs``, including those that derived features read."""
        needed: set[str] = set()
        pending = list(refs)
        while pending:
            ref = pending.pop()
            if ref in self.stored:
                needed.add(ref)
            elif ref in self.derived:
                pending.extend(self.derived[ref].expression.references)
        return needed


@dataclass(frozen=True)
class GroupRead:
    """One stored group a request reads: its table, join key, the stored features to read, and which of them the
    caller asked for (the others feed derived features)."""

    table: OnlineTable
    join_key: str
    lag_sla_s: float | None
    features: tuple[StoredFeature, ...]
    refs: tuple[str, ...]  # ref of each feature, in the same order
    requested: int  # how many of them are among the request's refs

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @cached_property
    def name(self) -> str:
        """``catalog.group``: the ``group`` label of the staleness histogram (made once per plan, not per request)."""
        return f"{self.table.catalog}.{self.table.group}"


@dataclass(frozen=True)
class ReadPlan:
    """What resolving a list of refs takes, worked out once per distinct list: the groups to read, and the
    derived and request-field refs asked for."""

    refs: tuple[str, ...]
    groups: tuple[GroupRead, ...]
    derived: tuple[str, ...]
    basis: tuple[str, ...]


MAX_CACHED_PLANS = 4096


@dataclass
class PendingLookup:
    """One request between its cache reads and its primary reads: what is answered, what is still to read."""

    plan: ReadPlan
    keys: list[list[Any]]
    read_ts: int
    fallback: set[str]
    started: float
    answers: dict[str, list[FeatureValues]] = field(default_factory=dict)
    cached: dict[str, list[FeatureValues | None]] = field(default_factory=dict)  # hits, None where a read answers
    reads: dict[str, CacheRead] = field(default_factory=dict)
    failed: bool = False  # a read failed, missed the deadline or was skipped

    def merge(self, remote: dict[str, list[FeatureValues]], failed: bool) -> None:
        """The primary's answers into place; keys without an answer within the deadline get their defaults."""
        self.failed = failed
        for name, (_, unique, _) in self.reads.items():
            got = remote.get(name)
            if name not in self.cached:
                if got is not None:
                    self.answers[name] = got
            else:  # the cache hits stand
                late = [FeatureValues(key, None, {}, "deadline") for key in unique]
                self.answers[name] = _merged(self.cached[name], late if got is None else got)


class FeatureResolver:
    """Resolves features for request rows. ``breaker`` trips when the store misses the deadline or raises
    (defaults are then served without asking it); per-backend outages are handled by the tiered store.

    The work is per request, per group and per column: one read per group, values gathered column by column,
    metadata shared by a group's features, metrics recorded once per request."""

    def __init__(
        self,
        catalog: ServingCatalog,
        store: OnlineStore,
        timeout_s: float = 0.1,
        breaker: CircuitBreaker | None = None,
        max_workers: int = 4,
        metrics: FeatureMetrics | None = None,
        lag_monitor: LagMonitor | None = None,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.lag_monitor = lag_monitor
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker("online_store")
        self.metrics = metrics
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="features")
        self._plans: dict[tuple[str, ...], ReadPlan] = {}
        # The production read path asks its caches in the caller's thread (each answers within the deadline: see
        # `CacheLayer`), or on the event loop with a networked cache's round trip awaited (`resolve_async`), and
        # reads a primary that is local (no network, no writer to wait on) in the caller's thread too, caches and
        # all; a remote primary, or a bare store, is read on the pool under the deadline (or awaited).
        self._read_cached: Callable[[Sequence[CacheRead], int], list[list[FeatureValues | None]]] | None = None
        self._read_cached_async: (
            Callable[[Sequence[CacheRead], int], Coroutine[Any, Any, list[list[FeatureValues | None]]]] | None
        ) = None
        self._read_store: Callable[[OnlineTable, Sequence[EntityKey], Sequence[str], int], list[FeatureValues]]
        # What `resolve_async` awaits: the tiered store's primary (its caches were asked), or the bare store.
        self._read_store_async: Callable[
            [OnlineTable, Sequence[EntityKey], Sequence[str], int], Coroutine[Any, Any, list[FeatureValues]]
        ]
        if isinstance(store, TieredOnlineStore):
            tiered = store
            if not tiered.local:
                self._read_cached, self._read_cached_async = tiered.get_cached, tiered.get_cached_async
            self._read_store = partial(tiered.get, caches=False)
            self._read_store_async = tiered.get_uncached_async
            self._read_inline = tiered.local
        else:
            self._read_store = store.get
            self._read_store_async = store.get_async
            self._read_inline = False
        self._late_reads: set[asyncio.Task[list[FeatureValues]]] = set()  # past the deadline, left to finish
        self._breakers_read = -math.inf

    def resolve(self, rows: Sequence[Mapping[str, Any]], refs: Sequence[str]) -> Resolution:
        """Values of ``refs`` for each row; a row holds join keys (``driver_id``) and request fields."""
        request = self._start(rows, refs)
        self._read_caches(request)
        if request.reads:
            done = self._read_now(request.reads, request.read_ts)
            if done is None:
                done = self._collect(self._submit(request.reads, request.read_ts), self._remaining_s(request))
            request.merge(*done)
        return self._finish(request, rows)

    async def resolve_async(self, rows: Sequence[Mapping[str, Any]], refs: Sequence[str]) -> Resolution:
        """`resolve` for an event loop: the in-process cache answers in place, a networked cache's read (Redis's
        MGET, bounded by the deadline) and a remote primary's read are awaited (Cassandra's with no thread between,
        the caches it fills filled off the answer's path), so other requests on the loop go on meanwhile. A read
        past the deadline is left to finish: its answer still fills the caches, and its backend's breaker hears how
        it went."""
        request = self._start(rows, refs)
        await self._read_caches_async(request)
        if request.reads:
            done = self._read_now(request.reads, request.read_ts)
            if done is None:
                reads = {
                    name: asyncio.ensure_future(self._read_store_async(table, unique, names, request.read_ts))
                    for name, (table, unique, names) in request.reads.items()
                }
                _, late = await asyncio.wait(reads.values(), timeout=self._remaining_s(request))
                for task in late:
                    self._late_reads.add(task)
                    task.add_done_callback(self._late_read_done)
                done = self._outcome(reads, late)
            request.merge(*done)
        return self._finish(request, rows)

    def _late_read_done(self, task: asyncio.Task[list[FeatureValues]]) -> None:
        self._late_reads.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a late read's failure was counted when the deadline passed

    def _start(self, rows: Sequence[Mapping[str, Any]], refs: Sequence[str]) -> PendingLookup:
        """The request's plan and read timestamp, its keys checked (before anything is read, whatever the breaker
        says); nothing read yet."""
        plan = self.plan(refs)
        started = time.perf_counter()
        read_ts = now_us()
        fallback = self._lagging_groups(plan)
        return PendingLookup(plan, _keys_by_group(rows, plan.groups), read_ts, fallback, started)

    def _remaining_s(self, request: PendingLookup) -> float:
        return max(self.timeout_s - (time.perf_counter() - request.started), 0.0)

    def _finish(self, request: PendingLookup, rows: Sequence[Mapping[str, Any]]) -> Resolution:
        plan, read_ts, fallback = request.plan, request.read_ts, request.fallback
        columns: dict[str, list[Any]] = {}
        meta: dict[str, MetaColumn] = {}
        for group, row_keys in zip(plan.groups, request.keys, strict=True):
            got = request.answers.get(group.table.name)
            group_meta = _group_meta(got, row_keys, read_ts, group.table.ttl_s, group.table.group in fallback)
            group_columns = _columns(got, row_keys, group, any(group_meta.defaulted))
            for ref, column in zip(group.refs, group_columns, strict=True):
                columns[ref] = column
                meta[ref] = group_meta
        self._local_columns(plan, rows, columns, meta)
        result = Resolution(
            plan.refs,
            len(rows),
            {ref: columns[ref] for ref in plan.refs},
            {ref: meta[ref] for ref in plan.refs},
            read_ts,
            request.failed or any(UNAVAILABLE in column.tier for column in meta.values()),
            tuple(sorted(fallback)),
        )
        if self.metrics is not None:
            seconds = time.perf_counter() - request.started
            after_answer(self._record, result, seconds, plan, meta, request.failed)
        return result

    def plan(self, refs: Sequence[str]) -> ReadPlan:
        """The read plan for ``refs`` (unknown refs raise `UnknownReferenceError`), cached per distinct list."""
        key = tuple(refs)
        plan = self._plans.get(key)
        if plan is None:
            self.catalog.check(refs)
            if len(self._plans) >= MAX_CACHED_PLANS:
                self._plans.clear()
            plan = self._plans[key] = _plan(self.catalog, key)
        return plan

    def _local_columns(
        self,
        plan: ReadPlan,
        rows: Sequence[Mapping[str, Any]],
        columns: dict[str, list[Any]],
        meta: dict[str, MetaColumn],
    ) -> None:
        """Request fields and derived features: the only values computed row by row (the DSL reads a row)."""
        for ref in plan.basis:
            columns[ref] = [row.get(ref[len(BASIS_PREFIX) :]) for row in rows]
            meta[ref] = MetaColumn.local(tier="request", defaulted=[False] * len(rows))
        if not plan.derived:
            return
        env_refs = [*(ref for group in plan.groups for ref in group.refs), *self.catalog.basis]
        for ref in self.catalog.basis:
            columns.setdefault(ref, [row.get(ref[len(BASIS_PREFIX) :]) for row in rows])
        env_columns = [columns[ref] for ref in env_refs]
        envs = list(map(row_to_dict(tuple(env_refs), 0), zip(*env_columns, strict=True)))
        if not env_refs:  # an expression of constants alone
            envs = [{} for _ in rows]
        for ref in plan.derived:
            derived = self.catalog.derived[ref]
            computed = [derived.expression.scalar(env) for env in envs]
            columns[ref] = [derived.default if value is None else value for value in computed]
            has_default = derived.default is not None
            meta[ref] = MetaColumn.local(tier="dsl", defaulted=[value is None and has_default for value in computed])

    def _lagging_groups(self, plan: ReadPlan) -> set[str]:
        """Streaming groups of the plan whose actors are outside the group's lag SLA."""
        if self.lag_monitor is None:
            return set()
        return {
            group.table.group
            for group in plan.groups
            if group.lag_sla_s is not None
            and self.lag_monitor.lagging(group.table.catalog, group.table.group, group.lag_sla_s)
        }

    def _record(
        self, result: Resolution, seconds: float, plan: ReadPlan, meta: dict[str, MetaColumn], failed: bool
    ) -> None:
        metrics = self.metrics
        assert metrics is not None
        now = time.perf_counter()
        lookup = LookupRecord(seconds, stream_fallback=result.stream_fallback)
        for group in plan.groups:
            if group.requested:
                _count_group(lookup, meta[group.refs[0]], group.requested, group.name)
        # The breakers' gauges: read after a failed or degraded lookup, else at most once per interval (reading
        # every breaker's state takes its lock; a gauge a second late is on time for a scrape).
        breakers = None
        if failed or result.degraded or now - self._breakers_read >= BREAKER_GAUGE_INTERVAL_S:
            breakers, self._breakers_read = self.breaker_states(), now
        metrics.record(lookup, breakers)

    def breaker_states(self) -> dict[str, str]:
        """Every circuit breaker on the read path: one per store backend, and the deadline's (``deadline``)."""
        return {**self.store.breaker_states(), "deadline": str(self.breaker.state)}

    def _read_caches(self, request: PendingLookup) -> None:
        """What the caches hold, every group asked at once in this thread (`_cache_reads`)."""
        names, reads = self._cache_reads(request)
        cached = None if self._read_cached is None else self._read_cached(reads, request.read_ts)
        self._take_cached(request, names, reads, cached)

    async def _read_caches_async(self, request: PendingLookup) -> None:
        """`_read_caches` for an event loop: a networked cache's one round trip for every group is awaited."""
        names, reads = self._cache_reads(request)
        cached = None if self._read_cached_async is None else await self._read_cached_async(reads, request.read_ts)
        self._take_cached(request, names, reads, cached)

    def _cache_reads(self, request: PendingLookup) -> tuple[list[str], list[CacheRead]]:
        """Per group, its table's name and its read: the table to read, distinct keys in first-seen order, the
        features; a lagging streaming group is read from its batch-value table (answers stay under its own name)."""
        names: list[str] = []
        reads: list[CacheRead] = []
        for group, row_keys in zip(request.plan.groups, request.keys, strict=True):
            table = group.table.batch_fallback() if group.table.group in request.fallback else group.table
            names.append(group.table.name)
            reads.append((table, list(dict.fromkeys(row_keys)), group.names))
        return names, reads

    @staticmethod
    def _take_cached(
        request: PendingLookup,
        names: list[str],
        reads: list[CacheRead],
        cached: list[list[FeatureValues | None]] | None,
    ) -> None:
        """Each group's cache answers (``cached`` None: the caches were not asked) into ``request.answers``; what is
        left goes to ``request.reads``, for the primary (or, for a local or bare store, the whole store)."""
        for n, (name, (table, unique, features)) in enumerate(zip(names, reads, strict=True)):
            got = None if cached is None else cached[n]
            if got is not None:
                if all(got):  # truth, not ==: no dataclass __eq__ per answer
                    request.answers[name] = got  # type: ignore[assignment]  # every key answered
                    continue
                request.cached[name] = got
                unique = [key for key, answer in zip(unique, got, strict=True) if answer is None]
            if unique:
                request.reads[name] = (table, unique, features)

    def _read_now(
        self, reads: dict[str, CacheRead], read_ts: int
    ) -> tuple[dict[str, list[FeatureValues]], bool] | None:
        """The reads no cache answered, when nothing is to be waited for: a local store read in this thread, or
        none while the deadline's breaker is open. None: they go to the pool (`_submit`), under the deadline."""
        if self._read_inline:
            return {name: self.store.get(*read, read_ts) for name, read in reads.items()}, False
        if not self.breaker.allow():
            return {}, True
        return None

    def _submit(
        self, reads: dict[str, CacheRead], read_ts: int
    ) -> dict[str, concurrent.futures.Future[list[FeatureValues]]]:
        return {
            name: self._pool.submit(self._read_store, table, unique, names, read_ts)
            for name, (table, unique, names) in reads.items()
        }

    def _collect(
        self, futures: dict[str, concurrent.futures.Future[list[FeatureValues]]], timeout_s: float
    ) -> tuple[dict[str, list[FeatureValues]], bool]:
        """Answers that arrived within the deadline."""
        _, late = concurrent.futures.wait(futures.values(), timeout=timeout_s)
        return self._outcome(futures, late)

    def _outcome(
        self, reads: Mapping[str, ReadOutcome], late: Collection[ReadOutcome]
    ) -> tuple[dict[str, list[FeatureValues]], bool]:
        """The answers of the reads that are done, and whether any failed. The breaker counts missed deadlines and
        errors (a backend the store itself reported unavailable is counted by that backend's own breaker)."""
        answers: dict[str, list[FeatureValues]] = {}
        failed = bool(late)
        for name, read in reads.items():
            if read in late or read.exception() is not None:
                failed = True
                continue
            answers[name] = read.result()
        if failed:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        return answers, failed

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _plan(catalog: ServingCatalog, refs: tuple[str, ...]) -> ReadPlan:
    requested = set(refs)
    by_table: dict[str, list[str]] = {}
    for ref in sorted(catalog.stored_needs(refs)):
        by_table.setdefault(catalog.stored[ref].table.name, []).append(ref)
    groups = []
    for group_refs in by_table.values():
        features = tuple(catalog.stored[ref] for ref in group_refs)
        first = features[0]
        count = sum(ref in requested for ref in group_refs)
        groups.append(GroupRead(first.table, first.join_key, first.lag_sla_s, features, tuple(group_refs), count))
    derived = tuple(ref for ref in dict.fromkeys(refs) if ref in catalog.derived)
    basis = tuple(ref for ref in dict.fromkeys(refs) if ref in catalog.basis)
    return ReadPlan(refs, tuple(groups), derived, basis)


def _keys_by_group(rows: Sequence[Mapping[str, Any]], groups: Sequence[GroupRead]) -> list[list[Any]]:
    """Each group's join key per row, checked once per distinct join key."""
    by_join_key: dict[tuple[str, FeatureType], list[Any]] = {}
    for group in groups:
        slot = (group.join_key, group.table.key_type)
        if slot not in by_join_key:
            by_join_key[slot] = _keys_of(rows, *slot)
    return [by_join_key[(group.join_key, group.table.key_type)] for group in groups]


def _keys_of(rows: Sequence[Mapping[str, Any]], join_key: str, key_type: FeatureType) -> list[Any]:
    expected = str if key_type is FeatureType.STRING else int
    try:
        keys = [row[join_key] for row in rows]
    except KeyError:
        keys = []
    if len(keys) == len(rows) and set(map(type, keys)) <= {expected}:
        return keys  # the common case, checked per column: bool is not int here, so True is refused below
    return [_key_of(row, join_key, key_type) for row in rows]


def _merged(local: list[FeatureValues | None], remote: list[FeatureValues]) -> list[FeatureValues]:
    """The in-process answers with their misses replaced, in order, by the answers read for them."""
    read = iter(remote)
    return [next(read) if answer is None else answer for answer in local]


def _aligned(got: list[FeatureValues], row_keys: list[Any]) -> list[FeatureValues]:
    """The store's answers (one per distinct key) as one per row."""
    if len(got) == len(row_keys):
        return got
    by_key = {answer.key: answer for answer in got}
    return [by_key[key] for key in row_keys]


_FEATURE_TS, _LAYER = attrgetter("feature_ts"), attrgetter("layer")


def _group_meta(
    got: list[FeatureValues] | None, row_keys: list[Any], read_ts: int, ttl_s: float, batch_fallback: bool
) -> MetaColumn:
    if got is None:  # no answer within the deadline, or the breaker kept the store from being asked
        meta = MetaColumn.local(tier="deadline", defaulted=[True] * len(row_keys))
        meta.batch_fallback = batch_fallback
        return meta
    answers = _aligned(got, row_keys)
    feature_ts: list[int | None] = list(map(_FEATURE_TS, answers))
    try:  # every key found, the common case: no per-value test for a missing one (a None fails the subtraction)
        ages = [(read_ts - ts) / 1_000_000 for ts in cast("list[int]", feature_ts)]
    except TypeError:
        ages = None
    if ages is not None:
        n = len(ages)
        stale = [False] * n if not ages or max(ages) <= ttl_s else [age > ttl_s for age in ages]
        tier = list(map(_LAYER, answers))  # a found answer always names its layer
        return MetaColumn(feature_ts, cast("list[float | None]", ages), tier, [False] * n, stale, batch_fallback)
    tier = [answer.layer or "none" for answer in answers]
    staleness_s = [None if ts is None else (read_ts - ts) / 1_000_000 for ts in feature_ts]
    return MetaColumn(
        feature_ts=feature_ts,
        staleness_s=staleness_s,
        tier=tier,
        defaulted=[ts is None for ts in feature_ts],
        stale=[age is not None and age > ttl_s for age in staleness_s],
        batch_fallback=batch_fallback,
    )


def _columns(got: list[FeatureValues] | None, row_keys: list[Any], group: GroupRead, misses: bool) -> list[list[Any]]:
    """The group's feature values, one column per feature, transposed in C when every key was found."""
    if got is None:
        return [[feature.default] * len(row_keys) for feature in group.features]
    answers = _aligned(got, row_keys)
    names = group.names
    if not misses and len(names) > 1:
        try:
            by_row = map(itemgetter(*names), map(attrgetter("values"), answers))
            return [list(column) for column in zip(*by_row, strict=True)] or [[] for _ in names]
        except KeyError:
            pass  # a store left a feature out of a found row: the per-column path reads it as null
    return [
        [answer.values.get(feature.name) if answer.feature_ts is not None else feature.default for answer in answers]
        for feature in group.features
    ]


def _count_group(lookup: LookupRecord, meta: MetaColumn, features: int, group: str) -> None:
    """Add one group's values to the request's counts: per tier served, per default reason, the oldest age."""
    if not meta.tier:  # a request of no rows
        return
    if not any(meta.defaulted):
        first = meta.tier[0]
        if meta.tier.count(first) == len(meta.tier):  # one tier served every row: the common case
            lookup.served[first] += len(meta.tier) * features
        else:
            for tier, rows in Counter(meta.tier).items():
                lookup.served[tier] += rows * features
        lookup.oldest_s[group] = max(cast("list[float]", meta.staleness_s))  # no default: every age is set
        return
    for tier, defaulted in zip(meta.tier, meta.defaulted, strict=True):
        if defaulted:
            lookup.defaults[{"none": "missing"}.get(tier, tier)] += features
        else:
            lookup.served[tier] += features
    ages = [age for age in meta.staleness_s if age is not None]
    if ages:
        lookup.oldest_s[group] = max(ages)


_PYTHON_TYPES: dict[FeatureType, tuple[type[Any], ...]] = {
    FeatureType.INT: (int,),
    FeatureType.FLOAT: (int, float),
    FeatureType.BOOL: (bool,),
    FeatureType.STRING: (str,),
}


def _coerce(name: str, kind: FeatureType, value: Any) -> Any:
    if kind is FeatureType.TIMESTAMP:
        try:
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"request field '{name}' must be an ISO-8601 timestamp, got {value!r}") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    is_bool = isinstance(value, bool)
    if not isinstance(value, _PYTHON_TYPES[kind]) or (is_bool and kind is not FeatureType.BOOL):
        raise ValueError(f"request field '{name}' must be a {kind}, got {value!r}")
    return float(value) if kind is FeatureType.FLOAT else value


def _key_of(row: Mapping[str, Any], join_key: str, key_type: FeatureType) -> Any:
    if join_key not in row or row[join_key] is None:
        raise EntityKeyError(f"request row lacks '{join_key}', which the requested features are keyed by")
    key = row[join_key]
    expected = str if key_type is FeatureType.STRING else int
    if not isinstance(key, expected) or isinstance(key, bool):
        raise EntityKeyError(f"'{join_key}' must be a {key_type}, got {key!r}")
    return key
