"""The feature resolver: entity keys + feature refs in, feature values out, for online predictions.

One read timestamp for every feature of a request (the seed's snapshot isolation); one batched read per
feature group; a deadline (the seed's 100 ms request timeout) after which defaults are served; a circuit
breaker that stops calling a failing store; derived features computed with the same compiled DSL as training.
Values are never silently expired: a value older than its group's TTL is served, flagged ``stale``.
When a streaming group's aggregation actors fall behind its lag SLA, its batch values are read instead
(the seed's "fallback to batch values") and the resolution names the group in ``stream_fallback``.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ma_ray.palette.catalog import BASIS_PREFIX, FeatureRepository
from ma_ray.palette.dsl import CompiledExpression, compile_expression
from ma_ray.palette.online import FeatureValues, OnlineStore, OnlineTable, now_us
from ma_ray.palette.online.tiered import UNAVAILABLE
from ma_ray.palette.types import FeatureType
from ma_ray.serving.circuit_breaker import CircuitBreaker
from ma_ray.serving.feature_metrics import FeatureMetrics


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


@dataclass
class FeatureMeta:
    """How one value was obtained: its feature timestamp, age, tier, and whether a default stood in."""

    feature_ts: int | None = None
    staleness_s: float | None = None
    tier: str = ""
    defaulted: bool = False
    stale: bool = False
    batch_fallback: bool = False  # the stream lagged past its SLA: this is the batch pipeline's value


@dataclass
class ResolvedRow:
    values: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, FeatureMeta] = field(default_factory=dict)


@dataclass
class Resolution:
    rows: list[ResolvedRow]
    read_ts: int
    degraded: bool  # some group's store failed or was skipped by its breaker: defaults were served
    stream_fallback: tuple[str, ...] = ()  # streaming groups served from batch values because they lag


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


class FeatureResolver:
    """Resolves features for request rows. ``breaker`` trips when the store misses the deadline or raises
    (defaults are then served without asking it); per-backend outages are handled by the tiered store."""

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

    def resolve(self, rows: Sequence[Mapping[str, Any]], refs: Sequence[str]) -> Resolution:
        """Values of ``refs`` for each row; a row holds join keys (``driver_id``) and request fields."""
        self.catalog.check(refs)
        started = time.perf_counter()
        read_ts = now_us()
        stored = self.catalog.stored_needs(refs)
        fallback = self._lagging_groups(stored)
        answers, degraded = self._read(rows, stored, read_ts, fallback)
        resolved = [self._row(row, refs, stored, answers, read_ts, fallback) for row in rows]
        result = Resolution(resolved, read_ts, degraded, tuple(sorted(fallback)))
        if self.metrics is not None:
            self._record(time.perf_counter() - started, result, stored)
        return result

    def _lagging_groups(self, stored: set[str]) -> set[str]:
        """Streaming groups of ``stored`` whose actors are outside the group's lag SLA."""
        if self.lag_monitor is None:
            return set()
        streaming = {
            (f.table.catalog, f.table.group, f.lag_sla_s)
            for f in (self.catalog.stored[ref] for ref in stored)
            if f.lag_sla_s is not None
        }
        return {group for catalog, group, sla in streaming if self.lag_monitor.lagging(catalog, group, sla)}

    def _record(self, seconds: float, result: Resolution, stored: set[str]) -> None:
        metrics = self.metrics
        assert metrics is not None
        metrics.record_stream_fallback(result.stream_fallback)
        metas = [row.meta[ref] for row in result.rows for ref in stored if ref in row.meta]
        metrics.record_lookup(seconds, [meta.tier for meta in metas if not meta.defaulted])
        for meta in metas:
            if meta.defaulted:
                metrics.record_default({"none": "missing"}.get(meta.tier, meta.tier))
            elif meta.staleness_s is not None:
                metrics.record_staleness(meta.staleness_s)
        states = getattr(self.store, "breaker_states", dict)()
        metrics.record_breakers({**states, "deadline": str(self.breaker.state)})

    def _read(
        self, rows: Sequence[Mapping[str, Any]], stored: set[str], read_ts: int, fallback: set[str]
    ) -> tuple[dict[tuple[str, Any], FeatureValues], bool]:
        """(table name, key) -> answer, for every table the stored refs live in, read concurrently; a lagging
        streaming group is read from its batch-value table (answers stay under the group's own table name)."""
        by_table: dict[str, tuple[OnlineTable, str, set[str]]] = {}
        for ref in stored:
            feature = self.catalog.stored[ref]
            table = feature.table.batch_fallback() if feature.table.group in fallback else feature.table
            by_table.setdefault(feature.table.name, (table, feature.join_key, set()))[2].add(feature.name)
        if not by_table:
            return {}, False
        keys = {  # validated before anything is read, whatever the breaker says
            name: list(dict.fromkeys(_key_of(row, join_key, table.key_type) for row in rows))
            for name, (table, join_key, _) in by_table.items()
        }
        if not self.breaker.allow():
            return {}, True
        futures = {
            name: self._pool.submit(self.store.get, table, keys[name], sorted(names), read_ts)
            for name, (table, _, names) in by_table.items()
        }
        return self._collect(futures)

    def _collect(self, futures: dict) -> tuple[dict[tuple[str, Any], FeatureValues], bool]:
        """Answers that arrived within the deadline. The breaker counts missed deadlines and errors; a backend
        that the store itself reported unavailable only marks the result degraded (its own breaker counts)."""
        answers: dict[tuple[str, Any], FeatureValues] = {}
        done, late = concurrent.futures.wait(futures.values(), timeout=self.timeout_s)
        failed = bool(late)
        unavailable = False
        for name, future in futures.items():
            if future not in done or future.exception() is not None:
                failed = True
                continue
            for values in future.result():
                answers[(name, values.key)] = values
                unavailable = unavailable or values.tier == UNAVAILABLE
        if failed:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        return answers, failed or unavailable

    def _row(
        self,
        row: Mapping[str, Any],
        refs: Sequence[str],
        stored: set[str],
        answers: dict,
        read_ts: int,
        fallback: set[str],
    ) -> ResolvedRow:
        resolved = ResolvedRow()
        env: dict[str, Any] = {}
        for ref in stored:
            feature = self.catalog.stored[ref]
            answer = answers.get((feature.table.name, row[feature.join_key]))
            env[ref], resolved.meta[ref] = _stored_value(feature, answer, read_ts)
            resolved.meta[ref].batch_fallback = feature.table.group in fallback
        for ref in self.catalog.basis:
            field_name = ref[len(BASIS_PREFIX) :]
            env[ref] = row.get(field_name)
        for ref in refs:
            if ref in self.catalog.derived:
                derived = self.catalog.derived[ref]
                value = derived.expression.scalar(env)
                resolved.values[ref] = derived.default if value is None else value
                resolved.meta[ref] = FeatureMeta(tier="dsl", defaulted=value is None and derived.default is not None)
            elif ref in self.catalog.basis:
                resolved.values[ref] = env[ref]
                resolved.meta[ref] = FeatureMeta(tier="request")
            else:
                resolved.values[ref] = env[ref]
        resolved.meta = {ref: resolved.meta[ref] for ref in refs}
        return resolved

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


_PYTHON_TYPES: dict[FeatureType, tuple[type, ...]] = {
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


def _stored_value(feature: StoredFeature, answer: FeatureValues | None, read_ts: int) -> tuple[Any, FeatureMeta]:
    if answer is None:  # no answer within the deadline, or the breaker kept the store from being asked
        return feature.default, FeatureMeta(tier="deadline", defaulted=True)
    if not answer.found:
        return feature.default, FeatureMeta(tier=answer.tier or "none", defaulted=True)
    staleness_s = (read_ts - (answer.feature_ts or 0)) / 1_000_000
    meta = FeatureMeta(answer.feature_ts, staleness_s, answer.tier, stale=staleness_s > feature.table.ttl_s)
    return answer.values.get(feature.name), meta
