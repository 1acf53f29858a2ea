"""The feature catalog's models: entities, feature groups, features, and canonical feature references.

A feature repository (YAML files or Python objects) loads into these pydantic models; everything downstream
(the schema registry, lineage, pipelines, serving) reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ma_ray.palette.types import FeatureType

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_NAME = re.compile(NAME_PATTERN)
PALETTE_PREFIX = "@palette:"
BASIS_PREFIX = "@basis:"
# The seed gives no figure: a minute behind is when a 1-hour counter starts to mislead.
DEFAULT_LAG_SLA_S = 60.0


class UnknownFeatureError(KeyError):
    """A feature, group or stored feature the catalog (or a store's table) does not have; the message names it."""

    def __str__(self) -> str:
        return str(self.args[0])


class SourceKind(StrEnum):
    BATCH = "batch"
    STREAMING = "streaming"
    REQUEST = "request"  # request-time fields, referenced as @basis:<name>


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Entity(_Strict):
    """A thing features describe (a driver, a rider), identified by its join key."""

    name: str = Field(pattern=NAME_PATTERN)
    join_key: str = Field(pattern=NAME_PATTERN)
    key_type: FeatureType = FeatureType.STRING
    description: str = ""

    @field_validator("key_type")
    @classmethod
    def _key_types(cls, value: FeatureType) -> FeatureType:
        if value not in (FeatureType.STRING, FeatureType.INT):
            raise ValueError(f"a join key is a string or an int, not {value}")
        return value


class AggregationFunction(StrEnum):
    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    DISTINCT_COUNT = "distinct_count"
    LAST = "last"


WINDOW_PATTERN = r"^[1-9][0-9]{0,4}[mhd]$"
_WINDOW_UNITS_S = {"m": 60, "h": 3600, "d": 86_400}


def window_seconds(window: str) -> int:
    """``"7d"`` -> 604800; minutes (m), hours (h) and days (d)."""
    if not re.match(WINDOW_PATTERN, window):
        raise ValueError(f"window {window!r} is not <n>m, <n>h or <n>d (e.g. 1h, 1d, 7d, 28d)")
    return int(window[:-1]) * _WINDOW_UNITS_S[window[-1]]


class Aggregation(_Strict):
    """How a feature is computed from its group's raw source: ``function`` over the rows of the entity that
    fall in the trailing ``window`` and pass ``filter``.

    The aggregated value is a raw ``column`` or a DSL ``value`` expression over raw columns (``@basis:<column>``);
    ``count`` needs neither (it counts rows; with one, it counts non-null values). ``filter`` is a DSL boolean
    over raw columns. Columns are checked against the raw table's schema when the pipeline is generated.
    """

    function: AggregationFunction
    column: str | None = Field(default=None, pattern=NAME_PATTERN)
    value: str | None = Field(default=None, min_length=1, description="DSL expression over @basis:<raw column>")
    window: str = Field(pattern=WINDOW_PATTERN)
    filter: str | None = Field(default=None, min_length=1, description="DSL boolean over @basis:<raw column>")
    time_column: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="event-time column; default: the raw table's own"
    )

    @model_validator(mode="after")
    def _check(self) -> Aggregation:
        if self.column is not None and self.value is not None:
            raise ValueError("an aggregation takes a raw `column` or a DSL `value`, not both")
        if self.function is not AggregationFunction.COUNT and self.column is None and self.value is None:
            raise ValueError(f"aggregation '{self.function}' needs a raw `column` or a DSL `value` to aggregate")
        from ma_ray.palette.dsl import DslError, parse

        for name in ("value", "filter"):
            source = getattr(self, name)
            if source is not None:
                try:
                    parse(source)
                except DslError as error:
                    raise ValueError(f"aggregation {name} {source!r} is not a valid DSL expression: {error}") from None
        return self

    @property
    def window_s(self) -> int:
        return window_seconds(self.window)


class Feature(_Strict):
    """One feature of a group. ``expression`` (DSL) makes it derived from other features and request fields;
    ``aggregation`` makes it computed by the group's pipeline from its raw source."""

    name: str = Field(pattern=NAME_PATTERN)
    type: FeatureType
    default: Any = None
    description: str = ""
    expression: str | None = None
    aggregation: Aggregation | None = None

    @model_validator(mode="after")
    def _default_matches_type(self) -> Feature:
        if self.default is not None and not _value_has_type(self.default, self.type):
            raise ValueError(f"default {self.default!r} of feature '{self.name}' is not a {self.type}")
        if self.expression is not None and self.aggregation is not None:
            raise ValueError(f"feature '{self.name}' has both an expression and an aggregation; keep one")
        if self.aggregation is not None:
            _check_aggregation_type(self.name, self.type, self.aggregation.function)
        return self


def _check_aggregation_type(name: str, kind: FeatureType, function: AggregationFunction) -> None:
    """Types an aggregation can give whatever its input: counts are int (or float), means are float."""
    counts = (AggregationFunction.COUNT, AggregationFunction.DISTINCT_COUNT)
    if function in counts and not kind.is_numeric:
        raise ValueError(f"feature '{name}' is a {function}, so its type must be int (or float), not {kind}")
    if function is AggregationFunction.MEAN and kind is not FeatureType.FLOAT:
        raise ValueError(f"feature '{name}' is a mean, so its type must be float, not {kind}")


def _value_has_type(value: Any, kind: FeatureType) -> bool:
    checks = {
        FeatureType.INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
        FeatureType.FLOAT: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        FeatureType.BOOL: lambda v: isinstance(v, bool),
        FeatureType.STRING: lambda v: isinstance(v, str),
        FeatureType.TIMESTAMP: lambda v: isinstance(v, int) and not isinstance(v, bool),  # epoch microseconds
    }
    return checks[kind](value)


class FeatureGroup(_Strict):
    """Features computed together for one entity, from one source, on one schedule, with one TTL and tier."""

    name: str = Field(pattern=NAME_PATTERN)
    entity: str | None = Field(default=None, description="None only for request-time groups")
    owner: str = Field(min_length=1)
    description: str = ""
    source: SourceKind
    raw_source: str | None = Field(default=None, description="the raw table it is computed from, e.g. trips")
    schedule: str | None = Field(default=None, description="batch schedule, e.g. daily")
    ttl_s: int = Field(default=7 * 86_400, gt=0)
    tier: int = Field(default=3, ge=1, le=4)
    lag_sla_s: float | None = Field(
        default=None,
        gt=0,
        description="streaming groups: how far behind the stream may fall before readers get batch values "
        f"(default {DEFAULT_LAG_SLA_S:g} s)",
    )
    tags: dict[str, str] = Field(default_factory=dict)
    features: tuple[Feature, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> FeatureGroup:
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"group '{self.name}' declares feature(s) twice: {', '.join(duplicates)}")
        if self.source is not SourceKind.REQUEST and self.entity is None:
            raise ValueError(f"group '{self.name}' needs an entity (only request-time groups have none)")
        if self.lag_sla_s is not None and self.source is not SourceKind.STREAMING:
            raise ValueError(f"group '{self.name}' sets lag_sla_s, which only streaming groups have")
        if self.source is SourceKind.REQUEST and any(f.expression for f in self.features):
            raise ValueError(f"request-time group '{self.name}' cannot hold derived features")
        aggregated = [f.name for f in self.features if f.aggregation is not None]
        if aggregated and (self.source is SourceKind.REQUEST or self.raw_source is None):
            raise ValueError(
                f"group '{self.name}' declares aggregations ({', '.join(aggregated)}) but has no raw_source "
                "to compute them from"
            )
        return self

    @property
    def stream_lag_sla_s(self) -> float | None:
        """The lag SLA of a streaming group (its own or the default); None for other groups."""
        if self.source is not SourceKind.STREAMING:
            return None
        return self.lag_sla_s or DEFAULT_LAG_SLA_S

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"group '{self.name}' has no feature '{name}'")


class FeatureRepository(_Strict):
    """Everything one catalog declares: what `ma-ray apply` validates and registers."""

    catalog: str = Field(pattern=NAME_PATTERN)
    entities: tuple[Entity, ...] = ()
    groups: tuple[FeatureGroup, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> FeatureRepository:
        entity_names = [e.name for e in self.entities]
        group_names = [g.name for g in self.groups]
        for kind, names in (("entity", entity_names), ("feature group", group_names)):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind} declared twice: {', '.join(duplicates)}")
        for group in self.groups:
            if group.entity is not None and group.entity not in entity_names:
                known = ", ".join(entity_names) or "none"
                raise ValueError(f"group '{group.name}' names unknown entity '{group.entity}' (known: {known})")
        return self

    def entity(self, name: str) -> Entity:
        for entity in self.entities:
            if entity.name == name:
                return entity
        raise KeyError(f"no entity '{name}' in catalog '{self.catalog}'")

    def refs(self) -> dict[str, tuple[FeatureGroup, Feature]]:
        """Every reference this repository defines: feature refs and request fields (@basis:...)."""
        found: dict[str, tuple[FeatureGroup, Feature]] = {}
        for group in self.groups:
            for feature in group.features:
                found[self.ref_of(group, feature)] = (group, feature)
        return found

    def ref_of(self, group: FeatureGroup, feature: Feature) -> str:
        if group.source is SourceKind.REQUEST:
            return f"{BASIS_PREFIX}{feature.name}"
        join_key = self.entity(group.entity or "").join_key
        return str(FeatureRef(self.catalog, group.name, feature.name, join_key))


def check_input_refs(refs: tuple[str, ...]) -> tuple[str, ...]:
    """A model's inputs as written (a job spec's, a Gallery signature's): feature refs and ``@basis:<field>``
    request fields, each once. Returns ``refs``; raises ``ValueError`` naming the first bad one."""
    for ref in refs:
        if ref.startswith(BASIS_PREFIX):
            if not ref[len(BASIS_PREFIX) :].isidentifier():
                raise ValueError(f"{ref!r} is not a request field: write @basis:<field>")
        else:
            FeatureRef.parse(ref)
    if len(set(refs)) != len(refs):
        raise ValueError("a feature is listed twice")
    return refs


@dataclass(frozen=True)
class FeatureRef:
    """`@palette:<catalog>:<group>:<feature>:<join_key>`."""

    catalog: str
    group: str
    feature: str
    join_key: str

    def __str__(self) -> str:
        return f"{PALETTE_PREFIX}{self.catalog}:{self.group}:{self.feature}:{self.join_key}"

    @classmethod
    def parse(cls, text: str) -> FeatureRef:
        if not text.startswith(PALETTE_PREFIX):
            raise ValueError(f"'{text}' is not a feature reference: expected {PALETTE_PREFIX}<catalog>:<group>:...")
        parts = text[len(PALETTE_PREFIX) :].split(":")
        if len(parts) != 4 or not all(_NAME.match(p) for p in parts):
            raise ValueError(
                f"'{text}' is not a feature reference: expected @palette:<catalog>:<group>:<feature>:<join_key> "
                "with lower-case names"
            )
        return cls(*parts)
