"""The pipeline generator: a feature repository's aggregation declarations -> one plan per feature group.

A `GroupPlan` says what a group's pipeline computes: the raw table it reads, the event-time column, and one
`AggregationSpec` per feature. Batch groups run as Ray Data jobs (`BatchPipeline`); streaming groups get the
same plans but are left to the streaming path. Plans are checked against the catalog alone when generated and
against the raw table's Arrow schema when bound (`GroupPlan.bind`), so a column that does not exist or has
the wrong type is refused with its name before any data is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pyarrow as pa

from ma_ray.palette.catalog import BASIS_PREFIX as BASIS
from ma_ray.palette.catalog import AggregationFunction, FeatureGroup, FeatureRepository, SourceKind
from ma_ray.palette.dsl import CompiledExpression, DslError, compile_expression
from ma_ray.palette.types import FeatureType

# The event-time column of each raw table the data generator writes (``aggregation.time_column`` overrides).
RAW_EVENT_TIME = {"trips": "requested_at", "trip_events": "event_ts"}
MICROS_PER_SECOND = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

F = AggregationFunction
_NUMERIC_IN = (FeatureType.INT, FeatureType.FLOAT, FeatureType.BOOL)
_ORDERED_IN = (FeatureType.INT, FeatureType.FLOAT, FeatureType.BOOL, FeatureType.STRING, FeatureType.TIMESTAMP)


class PipelineError(ValueError):
    """A declaration the pipeline cannot run; the message names the group, the feature and the column."""


class RawSchemaError(PipelineError):
    """Raw Parquet whose schema does not fit the declarations (a missing column, a wrong type)."""


@dataclass(frozen=True)
class AggregationSpec:
    """One feature's aggregation, resolved: function, input (column or DSL value), filter, window in seconds."""

    feature: str
    type: FeatureType
    function: AggregationFunction
    column: str | None
    value: str | None
    filter: str | None
    window_s: int


@dataclass(frozen=True)
class GroupPlan:
    """The pipeline of one feature group, from the catalog alone (see `bind` for the raw-schema checks)."""

    catalog: str
    group: str
    source: SourceKind
    entity: str
    join_key: str
    key_type: FeatureType
    raw_source: str
    time_column: str
    schedule: str | None
    aggregations: tuple[AggregationSpec, ...]

    @property
    def snapshot_id(self) -> str:
        return f"{self.catalog}.{self.group}"

    @property
    def max_window_s(self) -> int:
        return max(a.window_s for a in self.aggregations)

    def window(self, as_of: date) -> tuple[datetime, datetime]:
        """[start, end) of the widest window as of the end of ``as_of`` (UTC)."""
        end = day_end(as_of)
        return end - timedelta(seconds=self.max_window_s), end

    def partition_dates(self, as_of: date) -> list[date]:
        """The raw ``date=`` partitions the widest window touches, oldest first."""
        start, end = self.window(as_of)
        first, last = start.date(), (end - timedelta(microseconds=1)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def bind(self, schema: pa.Schema) -> BoundPlan:
        """Check every declaration against the raw table's schema; raises `RawSchemaError` naming the column."""
        return BoundPlan.of(self, schema)


@dataclass(frozen=True)
class PipelineSet:
    """What the generator made of a repository: batch plans to run here, streaming plans left to the streaming
    path, and the groups no pipeline computes (request-time fields, derived-only groups) with the reason."""

    catalog: str
    batch: tuple[GroupPlan, ...]
    streaming: tuple[GroupPlan, ...]
    skipped: dict[str, str] = field(default_factory=dict)

    def plan(self, group: str) -> GroupPlan:
        for plan in (*self.batch, *self.streaming):
            if plan.group == group:
                return plan
        if group in self.skipped:
            raise PipelineError(f"group '{group}' has no pipeline: {self.skipped[group]}")
        raise PipelineError(f"catalog '{self.catalog}' has no group '{group}'")


def generate_pipelines(repo: FeatureRepository) -> PipelineSet:
    """One plan per group that declares aggregations; raises `PipelineError` for half-declared groups."""
    batch: list[GroupPlan] = []
    streaming: list[GroupPlan] = []
    skipped: dict[str, str] = {}
    for group in repo.groups:
        reason = _skip_reason(group)
        if reason:
            skipped[group.name] = reason
            continue
        plan = _plan(repo, group)
        (streaming if group.source is SourceKind.STREAMING else batch).append(plan)
    return PipelineSet(repo.catalog, tuple(batch), tuple(streaming), skipped)


def _skip_reason(group: FeatureGroup) -> str | None:
    if group.source is SourceKind.REQUEST:
        return "request-time fields arrive with each request"
    stored = [f for f in group.features if f.expression is None]
    if not stored:
        return "only derived (DSL) features, computed at read time"
    if all(f.aggregation is None for f in stored):
        return "no aggregation declared"
    return None


def _plan(repo: FeatureRepository, group: FeatureGroup) -> GroupPlan:
    missing = [f.name for f in group.features if f.expression is None and f.aggregation is None]
    if missing:
        raise PipelineError(
            f"{repo.catalog}.{group.name}: feature(s) {', '.join(missing)} declare no aggregation; every stored "
            "feature of a pipeline-computed group needs one"
        )
    raw = group.raw_source or ""
    time_columns = {f.aggregation.time_column or RAW_EVENT_TIME.get(raw) for f in group.features if f.aggregation}
    if None in time_columns:
        raise PipelineError(
            f"{repo.catalog}.{group.name}: no event-time column is known for raw table '{raw}'; "
            "set aggregation.time_column"
        )
    event_times = cast("set[str]", time_columns)  # no None: refused above
    if len(event_times) > 1:
        raise PipelineError(
            f"{repo.catalog}.{group.name}: aggregations use several time columns ({', '.join(sorted(event_times))}); "
            "one group has one event time"
        )
    entity = repo.entity(group.entity or "")
    specs = tuple(
        AggregationSpec(
            f.name,
            f.type,
            f.aggregation.function,
            f.aggregation.column,
            f.aggregation.value,
            f.aggregation.filter,
            f.aggregation.window_s,
        )
        for f in group.features
        if f.aggregation is not None
    )
    return GroupPlan(
        repo.catalog,
        group.name,
        group.source,
        entity.name,
        entity.join_key,
        entity.key_type,
        raw,
        event_times.pop(),
        group.schedule,
        specs,
    )


def day_end(as_of: date) -> datetime:
    """The instant the day ends: midnight UTC of the next day (windows are [end - window, end))."""
    return datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) + timedelta(days=1)


def epoch_us(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(microseconds=1)


def feature_type_of(arrow_type: pa.DataType) -> FeatureType | None:
    """The DSL/catalog type a raw Arrow column reads as, or None for types aggregations do not handle."""
    checks = (
        (pa.types.is_boolean, FeatureType.BOOL),
        (pa.types.is_integer, FeatureType.INT),
        (pa.types.is_floating, FeatureType.FLOAT),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), FeatureType.STRING),
        (pa.types.is_timestamp, FeatureType.TIMESTAMP),
    )
    for check, kind in checks:
        if check(arrow_type):
            return kind
    return None


@dataclass(frozen=True)
class BoundAggregation:
    """An aggregation checked against the raw schema: its input type, result type and the raw columns it reads."""

    spec: AggregationSpec
    input_type: FeatureType | None  # None: a plain count of rows
    result_type: FeatureType
    columns: frozenset[str]


class BoundPlan:
    """A plan checked against a raw schema. Picklable (Ray ships it to workers); DSL compiles lazily there."""

    def __init__(self, plan: GroupPlan, raw_types: Mapping[str, FeatureType], aggs: tuple[BoundAggregation, ...]):
        self.plan = plan
        self.raw_types = dict(raw_types)
        self.aggregations = aggs
        self._compiled: dict[str, CompiledExpression] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"plan": self.plan, "raw_types": self.raw_types, "aggregations": self.aggregations}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._compiled = {}

    @property
    def columns(self) -> list[str]:
        """The raw columns the pipeline reads: key, event time, and what the aggregations use."""
        used = {self.plan.join_key, self.plan.time_column}
        for agg in self.aggregations:
            used |= agg.columns
        return sorted(used)

    def compiled(self, source: str) -> CompiledExpression:
        found = self._compiled.get(source)
        if found is None:
            found = compile_expression(source, _dsl_types(self.raw_types))
            self._compiled[source] = found
        return found

    @classmethod
    def of(cls, plan: GroupPlan, schema: pa.Schema) -> BoundPlan:
        raw_types = {f.name: kind for f in schema if (kind := feature_type_of(f.type)) is not None}
        where = f"{plan.catalog}.{plan.group}"
        _require_column(schema, plan.join_key, where, "the entity key", (FeatureType.STRING, FeatureType.INT))
        _require_column(schema, plan.time_column, where, "the event time", (FeatureType.TIMESTAMP,))
        key_type = raw_types[plan.join_key]
        if key_type is not plan.key_type:
            raise RawSchemaError(
                f"{where}: raw column '{plan.join_key}' is {schema.field(plan.join_key).type}, but entity "
                f"'{plan.entity}' has {plan.key_type} keys"
            )
        bound = tuple(_bind(plan, spec, schema, raw_types) for spec in plan.aggregations)
        return cls(plan, raw_types, bound)


def _dsl_types(raw_types: Mapping[str, FeatureType]) -> dict[str, FeatureType]:
    return {f"{BASIS}{name}": kind for name, kind in raw_types.items()}


def _require_column(schema: pa.Schema, name: str, where: str, role: str, kinds: tuple[FeatureType, ...]) -> FeatureType:
    if name not in schema.names:
        raise RawSchemaError(
            f"{where}: raw column '{name}' ({role}) does not exist; the raw table has: {', '.join(schema.names)}"
        )
    kind = feature_type_of(schema.field(name).type)
    if kind not in kinds:
        wanted = " or ".join(str(k) for k in kinds)
        raise RawSchemaError(f"{where}: raw column '{name}' ({role}) is {schema.field(name).type}, expected {wanted}")
    return kind


def _bind(
    plan: GroupPlan, spec: AggregationSpec, schema: pa.Schema, raw_types: dict[str, FeatureType]
) -> BoundAggregation:
    where = f"{plan.catalog}.{plan.group}.{spec.feature}"
    columns: set[str] = set()
    input_type: FeatureType | None = None
    if spec.column is not None:
        input_type = _require_column(schema, spec.column, where, f"input of {spec.function}", tuple(FeatureType))
        columns.add(spec.column)
    if spec.value is not None:
        compiled = _compile(spec.value, raw_types, where, "value", schema)
        input_type = compiled.output_type
        columns |= _raw_names(compiled)
    if spec.filter is not None:
        compiled = _compile(spec.filter, raw_types, where, "filter", schema)
        if compiled.output_type is not FeatureType.BOOL:
            raise PipelineError(f"{where}: filter {spec.filter!r} gives {compiled.output_type}, not bool")
        columns |= _raw_names(compiled)
    result = _result_type(spec.function, input_type, where)
    declared = spec.type
    if declared is not result and not (result is FeatureType.INT and declared is FeatureType.FLOAT):
        raise PipelineError(
            f"{where}: {spec.function} over {input_type} gives {result}, feature is declared {declared}"
        )
    return BoundAggregation(spec, input_type, result, frozenset(columns))


def _compile(
    source: str, raw_types: dict[str, FeatureType], where: str, role: str, schema: pa.Schema
) -> CompiledExpression:
    try:
        return compile_expression(source, _dsl_types(raw_types))
    except DslError as error:
        hint = f"; raw columns: {', '.join(schema.names)}"
        raise RawSchemaError(f"{where}: {role} {source!r} refused: {error}{hint}") from None


def _raw_names(compiled: CompiledExpression) -> set[str]:
    return {ref[len(BASIS) :] for ref in compiled.references}


def _result_type(function: AggregationFunction, input_type: FeatureType | None, where: str) -> FeatureType:
    if function in (F.COUNT, F.DISTINCT_COUNT):
        if function is F.DISTINCT_COUNT and input_type is None:
            raise PipelineError(f"{where}: distinct_count needs a column or value")
        return FeatureType.INT
    allowed = _NUMERIC_IN if function in (F.SUM, F.MEAN) else _ORDERED_IN if function in (F.MIN, F.MAX) else None
    if input_type is None or (allowed is not None and input_type not in allowed):
        raise PipelineError(f"{where}: {function} cannot aggregate {input_type} values")
    if function is F.MEAN:
        return FeatureType.FLOAT
    if function is F.SUM:
        return FeatureType.FLOAT if input_type is FeatureType.FLOAT else FeatureType.INT
    return input_type
