"""A feature lookup's reply as it crosses a hop (a Ray actor call, an HTTP body): column-wise plain lists, so it
is pickled or encoded once, at a cost per column. It reads like the row-wise dict it replaced
(``answer["rows"][i]["meta"][ref]["tier"]``); those rows are built only when someone asks for them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from ma_ray.serving.resolution import MetaColumn, Resolution

KEYS = ("read_ts", "degraded", "stream_fallback", "rows")


class FeatureAnswer(Mapping[str, Any]):
    """``values[ref][i]``: row i's value of ``ref``; ``meta[ref]``: how its values were obtained (one
    `MetaColumn` per group, shared by its features, pickled once)."""

    # The columns, by ref: an attribute that hides Mapping.values() (callers read ``answer.values[ref]``).
    values: dict[str, list[Any]]  # type: ignore[assignment]

    def __init__(
        self,
        read_ts: int,
        degraded: bool,
        stream_fallback: list[str],
        refs: list[str],
        values: dict[str, list[Any]],
        meta: dict[str, MetaColumn],
    ) -> None:
        self.read_ts, self.degraded, self.stream_fallback = read_ts, degraded, stream_fallback
        self.refs, self.values, self.meta = refs, values, meta
        self._rows: list[dict[str, Any]] | None = None

    @classmethod
    def of(cls, resolution: Resolution) -> FeatureAnswer:
        return cls(
            resolution.read_ts,
            resolution.degraded,
            list(resolution.stream_fallback),
            list(resolution.refs),
            resolution.columns,
            resolution.meta,
        )

    def __reduce__(self) -> tuple[Any, ...]:  # the columns only, never rows built for a reader
        return (FeatureAnswer, (self.read_ts, self.degraded, self.stream_fallback, self.refs, self.values, self.meta))

    def __getitem__(self, key: str) -> Any:
        if key == "rows":
            if self._rows is None:
                self._rows = self._row_dicts(jsonable=False)
            return self._rows
        if key in KEYS:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(KEYS)

    def __len__(self) -> int:
        return len(KEYS)

    def __repr__(self) -> str:
        return f"FeatureAnswer(refs={self.refs}, rows={self.row_count}, degraded={self.degraded})"

    @property
    def row_count(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 0

    def to_json(self) -> bytes:
        """The HTTP body, ``{"read_ts", "degraded", "stream_fallback", "rows": [{ref: {"value", ...meta}}]}``,
        encoded in one pass (timestamps as RFC 3339 text)."""
        body = {
            "read_ts": self.read_ts,
            "degraded": self.degraded,
            "stream_fallback": self.stream_fallback,
            "rows": self._row_dicts(jsonable=True),
        }
        return orjson.dumps(body)

    def _row_dicts(self, jsonable: bool) -> list[dict[str, Any]]:
        """Row by row: ``{"values": {ref: v}, "meta": {ref: {...}}}``, or for JSON ``{ref: {"value": v, ...}}``."""
        if jsonable:  # encoded at once: a group's features may share their metadata dicts
            per_group = {id(meta): _meta_dicts(meta) for meta in self.meta.values()}
            per_ref = {ref: per_group[id(self.meta[ref])] for ref in self.refs}
            return [
                {ref: {"value": self.values[ref][i], **per_ref[ref][i]} for ref in self.refs}
                for i in range(self.row_count)
            ]
        per_ref = {ref: _meta_dicts(self.meta[ref]) for ref in self.refs}  # a dict per value: callers may edit
        values, refs = self.values, self.refs
        return [
            {"values": {ref: values[ref][i] for ref in refs}, "meta": {ref: per_ref[ref][i] for ref in refs}}
            for i in range(self.row_count)
        ]


def _meta_dicts(meta: MetaColumn) -> list[dict[str, Any]]:
    fallback = meta.batch_fallback
    return [
        {
            "feature_ts": ts,
            "staleness_s": age,
            "tier": tier,
            "defaulted": defaulted,
            "stale": stale,
            "batch_fallback": fallback,
        }
        for ts, age, tier, defaulted, stale in zip(
            meta.feature_ts, meta.staleness_s, meta.tier, meta.defaulted, meta.stale, strict=True
        )
    ]
