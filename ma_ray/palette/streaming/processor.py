"""Micro-batch aggregation of validated events into per-entity windows, and checkpoints of that state.

`StreamAggregator.apply` folds a micro-batch into the windows (filters and DSL values are evaluated
vectorized over the batch, with the same compiled expressions as the batch pipeline) and returns the keys it
changed; `rows` gives those keys' feature values as online-store rows as of each key's row time (``feature_ts``:
its newest event, or later once its windows decayed), so rewriting them is idempotent. Windows also decay
without new events: `expire` moves keys whose oldest bucket left a window by the stream's event-time
watermark (the newest event time seen) to that watermark, so a quiet driver's ``trip_count_1h`` falls to 0.
`checkpoint` serializes the state with the Kafka offsets it includes; `restore` brings both back, so a
restart continues exactly after them.
"""

from __future__ import annotations

import heapq
import json
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from ma_ray.palette.catalog import AggregationFunction
from ma_ray.palette.offline import FEATURE_TIMESTAMP, TIMESTAMP_TYPE
from ma_ray.palette.online import EntityKey, EntityRow
from ma_ray.palette.pipelines import BoundPlan
from ma_ray.palette.streaming.window import EntityWindows, WindowAgg
from ma_ray.palette.types import FeatureType

F = AggregationFunction
CHECKPOINT_VERSION = 2
_READABLE_VERSIONS = (1, 2)  # version 1 had no decay times: its keys' rows sit at their newest event
_NEVER = -(2**62)
Offsets = dict[str, int]  # "topic:partition" -> the next offset to read


class CheckpointMismatchError(ValueError):
    """A checkpoint of other aggregations (the group's declarations changed) cannot be restored."""


def offset_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


class StreamAggregator:
    """The windowed state of one feature group over the entities one actor owns."""

    def __init__(self, bound: BoundPlan) -> None:
        self.bound = bound
        self.key = bound.plan.join_key
        self.time = bound.plan.time_column
        self.aggs = tuple(WindowAgg.of(a.spec.function, a.spec.window_s) for a in bound.aggregations)
        self.entities: dict[EntityKey, EntityWindows] = {}
        self.late_events = 0
        self.watermark_us = _NEVER
        self.decayed_us: dict[EntityKey, int] = {}  # key -> the time its windows were last decayed to
        self._changes: list[tuple[int, EntityKey]] = []  # heap of (when a key's windows next decay, key)
        self._due: dict[EntityKey, int] = {}  # each key's one live heap entry; others in the heap are stale

    @property
    def signature(self) -> list[list[Any]]:
        """What a checkpoint must match: each aggregation's feature, function, window, input and filter."""
        return [
            [a.spec.feature, str(a.spec.function), a.spec.window_s, a.spec.column, a.spec.value, a.spec.filter]
            for a in self.bound.aggregations
        ]

    # ---- aggregation ----------------------------------------------------------------------------------------
    def apply(self, events: Sequence[dict[str, Any]]) -> set[EntityKey]:
        """Fold validated events (any order) into the windows; returns the keys whose state moved."""
        inputs = self._inputs(events)
        changed: set[EntityKey] = set()
        earliest: dict[EntityKey, int] = {}  # per key, when the oldest bucket this batch added leaves its window
        n_aggs = len(self.aggs)
        for j, event in enumerate(events):
            key, ts = event[self.key], event[self.time]
            entity = self.entities.get(key)
            if entity is None:
                entity = self.entities[key] = EntityWindows(n_aggs)
            entity.advance(ts, self.aggs)
            late = False
            for i, agg in enumerate(self.aggs):
                mask, values = inputs[i]
                if mask is not None and not mask[j]:
                    continue
                value = None if values is None else values[j]
                if values is not None and value is None:
                    continue
                if entity.add(i, agg, ts, value):
                    leaves = (ts // agg.bucket_us + agg.buckets) * agg.bucket_us
                    earliest[key] = min(earliest.get(key, leaves), leaves)
                else:
                    late = True
            self.late_events += late
            changed.add(key)
            self.watermark_us = max(self.watermark_us, ts)
        for key, leaves in earliest.items():
            # A new bucket moves a key's next decay only if it is older than the one already due.
            if key not in self._due or leaves < self._due[key]:
                self._schedule(key)
        return changed

    # ---- decay without events -------------------------------------------------------------------------------
    def row_time(self, key: EntityKey) -> int:
        """The instant ``key``'s online row describes: its newest event, or the time its windows decayed to."""
        return max(self.entities[key].latest_us, self.decayed_us.get(key, _NEVER))

    def expire(self, watermark_us: int | None = None) -> set[EntityKey]:
        """Keys whose window values changed between their row time and ``watermark_us`` (default: the newest
        event time seen) only because old buckets left a window; their row time moves to the watermark."""
        watermark = self.watermark_us if watermark_us is None else watermark_us
        moved: set[EntityKey] = set()
        while self._changes and self._changes[0][0] <= watermark:
            when, key = heapq.heappop(self._changes)
            if self._due.get(key) != when:
                continue
            del self._due[key]
            due = self._next_change(key)
            if due is not None and due <= watermark:
                self.decayed_us[key] = max(watermark, self.row_time(key))
                moved.add(key)
            self._schedule(key)
        return moved

    def _next_change(self, key: EntityKey) -> int | None:
        """When a bucket next leaves one of ``key``'s windows, after its row time (None: all windows empty)."""
        entity, as_of = self.entities[key], self.row_time(key)
        times = []
        for agg, per in zip(self.aggs, entity.buckets, strict=True):
            live = [b for b in per if b >= agg.lowest_bucket(as_of)]
            if live:
                times.append((min(live) + agg.buckets) * agg.bucket_us)
        return min(times, default=None)

    def _schedule(self, key: EntityKey) -> None:
        due = self._next_change(key)
        if due is not None and due != self._due.get(key):
            self._due[key] = due
            heapq.heappush(self._changes, (due, key))

    def _inputs(self, events: Sequence[dict[str, Any]]) -> list[tuple[list[Any] | None, list[Any] | None]]:
        """Per aggregation: the filter mask and the input values of every event (None: not needed)."""
        columns: dict[str, pa.Array] = {}

        def column(name: str) -> pa.Array:
            if name not in columns:
                kind = self.bound.raw_types[name]
                columns[name] = pa.array([e.get(name) for e in events], _arrow(kind))
            return columns[name]

        def refs(source: str) -> dict[str, pa.Array]:
            compiled = self.bound.compiled(source)
            return {ref: column(ref.split(":", 1)[1]) for ref in compiled.references}

        found: list[tuple[list[Any] | None, list[Any] | None]] = []
        for agg in self.bound.aggregations:
            spec = agg.spec
            mask = values = None
            if spec.filter is not None:
                mask = self.bound.compiled(spec.filter).vectorized(refs(spec.filter)).to_pylist()
            if spec.column is not None:
                values = [e.get(spec.column) for e in events]
                if agg.input_type is FeatureType.FLOAT:
                    values = [None if v is None else float(v) for v in values]
            elif spec.value is not None:
                values = self.bound.compiled(spec.value).vectorized(refs(spec.value)).to_pylist()
            found.append((mask, values))
        return found

    # ---- reading --------------------------------------------------------------------------------------------
    def values(self, key: EntityKey, as_of_us: int | None = None) -> dict[str, Any]:
        """The features of ``key`` as of ``as_of_us`` (default: its newest event; must not be earlier)."""
        entity = self.entities.get(key)
        if entity is None:
            entity = EntityWindows(len(self.aggs))
        t = entity.latest_us if as_of_us is None else as_of_us
        found = {}
        for i, (agg, bound) in enumerate(zip(self.aggs, self.bound.aggregations, strict=True)):
            value = entity.value(i, agg, t)
            if value is not None and bound.spec.type is FeatureType.FLOAT:
                value = float(value)
            found[bound.spec.feature] = value
        return found

    def rows(self, keys: Iterable[EntityKey]) -> list[EntityRow]:
        """Online-store rows of ``keys``: values as of, and ``feature_ts`` equal to, each key's row time."""
        return [EntityRow(k, self.row_time(k), self.values(k, self.row_time(k))) for k in keys]

    def log_table(self, rows: Sequence[EntityRow]) -> pa.Table:
        """The rows as the offline log stores them: key, features as declared, ``feature_timestamp``."""
        plan = self.bound.plan
        columns: dict[str, pa.Array] = {self.key: pa.array([r.key for r in rows], _arrow(plan.key_type))}
        for agg in self.bound.aggregations:
            name = agg.spec.feature
            columns[name] = pa.array([r.values[name] for r in rows], _arrow(agg.spec.type))
        columns[FEATURE_TIMESTAMP] = pa.array([r.feature_ts for r in rows], pa.int64()).cast(TIMESTAMP_TYPE)
        return pa.table(columns)

    def state_size(self) -> int:
        """Accumulators held, over all entities and aggregations (bounded per entity by the buckets)."""
        return sum(e.size() for e in self.entities.values())

    # ---- checkpoints ----------------------------------------------------------------------------------------
    def checkpoint(self, offsets: Offsets) -> bytes:
        """The state and the offsets it includes (the next offset of each partition), compressed JSON."""
        entities = [
            [
                key,
                e.latest_us,
                [
                    [[b, _dump(agg.function, acc)] for b, acc in per.items()]
                    for agg, per in zip(self.aggs, e.buckets, strict=True)
                ],
                self.decayed_us.get(key),
            ]
            for key, e in self.entities.items()
        ]
        payload = {
            "version": CHECKPOINT_VERSION,
            "catalog": self.bound.plan.catalog,
            "group": self.bound.plan.group,
            "aggregations": self.signature,
            "offsets": offsets,
            "late_events": self.late_events,
            "watermark_us": self.watermark_us,
            "entities": entities,
        }
        return zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 1)

    @classmethod
    def restore(cls, bound: BoundPlan, data: bytes) -> tuple[StreamAggregator, Offsets]:
        """The aggregator and offsets of a checkpoint; `CheckpointMismatchError` if the declarations changed."""
        payload = json.loads(zlib.decompress(data))
        aggregator = cls(bound)
        if payload.get("version") not in _READABLE_VERSIONS or payload["aggregations"] != aggregator.signature:
            raise CheckpointMismatchError(
                f"checkpoint of {payload.get('catalog')}.{payload.get('group')} was taken with other aggregations "
                f"({payload.get('aggregations')}); the group now declares {aggregator.signature}"
            )
        for key, latest, buckets, *decayed in payload["entities"]:
            entity = EntityWindows(len(aggregator.aggs), latest)
            for agg, per, stored in zip(aggregator.aggs, entity.buckets, buckets, strict=True):
                for bucket, acc in stored:
                    per[bucket] = _load(agg.function, acc)
            aggregator.entities[key] = entity
            if decayed and decayed[0] is not None:
                aggregator.decayed_us[key] = decayed[0]
            aggregator.watermark_us = max(aggregator.watermark_us, latest)
            aggregator._schedule(key)
        aggregator.late_events = payload["late_events"]
        aggregator.watermark_us = max(aggregator.watermark_us, payload.get("watermark_us", _NEVER))
        return aggregator, dict(payload["offsets"])


def _arrow(kind: FeatureType) -> pa.DataType:
    return pa.int64() if kind is FeatureType.TIMESTAMP else kind.arrow


def _dump(function: AggregationFunction, acc: Any) -> Any:
    if function is F.DISTINCT_COUNT:
        return sorted(acc)
    return list(acc) if isinstance(acc, tuple) else acc


def _load(function: AggregationFunction, acc: Any) -> Any:
    if function is F.DISTINCT_COUNT:
        return set(acc)
    if function is F.LAST and acc is not None:
        return tuple(acc)
    return acc
