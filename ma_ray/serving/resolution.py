"""A resolution: the values of a lookup's refs for each request row, column by column, with how each was obtained."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass
class FeatureMeta:
    """How one value was obtained: its feature timestamp, age, tier, and whether a default stood in."""

    feature_ts: int | None = None
    staleness_s: float | None = None
    tier: str = ""
    defaulted: bool = False
    stale: bool = False
    batch_fallback: bool = False  # the stream lagged past its SLA: this is the batch pipeline's value


@dataclass(slots=True)
class MetaColumn:
    """How a column's values were obtained, one entry per request row. The stored features of one group share
    one (a row's features come from one stored row), so metadata costs per group and row, not per value."""

    feature_ts: list[int | None]
    staleness_s: list[float | None]
    tier: list[str]
    defaulted: list[bool]
    stale: list[bool]
    batch_fallback: bool = False

    @classmethod
    def local(cls, tier: str, defaulted: list[bool]) -> MetaColumn:
        """Values made in the request (``dsl``, ``request``) or defaults for all (``deadline``)."""
        n = len(defaulted)
        return cls([None] * n, [None] * n, [tier] * n, defaulted, [False] * n)

    def at(self, row: int) -> FeatureMeta:
        return FeatureMeta(
            self.feature_ts[row],
            self.staleness_s[row],
            self.tier[row],
            self.defaulted[row],
            self.stale[row],
            self.batch_fallback,
        )


@dataclass
class ResolvedRow:
    values: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, FeatureMeta] = field(default_factory=dict)


@dataclass
class Resolution:
    """Column-wise: ``columns[ref][i]`` is row i's value of a requested ref, ``meta[ref]`` how its values were
    obtained. ``rows`` gives the same row by row, built on first use (for callers off the hot path)."""

    refs: tuple[str, ...]
    row_count: int
    columns: dict[str, list[Any]]
    meta: dict[str, MetaColumn]
    read_ts: int
    degraded: bool  # some group's store failed or was skipped by its breaker: defaults were served
    stream_fallback: tuple[str, ...] = ()  # streaming groups served from batch values because they lag

    def __len__(self) -> int:
        return self.row_count

    @cached_property
    def rows(self) -> list[ResolvedRow]:
        return [
            ResolvedRow(
                {ref: self.columns[ref][i] for ref in self.refs}, {ref: self.meta[ref].at(i) for ref in self.refs}
            )
            for i in range(self.row_count)
        ]

    def tiers(self) -> set[str]:
        """Every tier that served a value of this resolution."""
        distinct = {id(meta): meta for meta in self.meta.values()}.values()
        return set().union(*(meta.tier for meta in distinct))
