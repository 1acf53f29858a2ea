"""Point-in-time correct joins of labels against feature history, in one process.

For every label row the join attaches the values of the latest feature row with the same key whose
``feature_ts <= label_ts`` (and, with a TTL, ``label_ts - feature_ts <= ttl_s``), never a later one: the
features a model would have seen online at that moment. This is what keeps training and serving consistent.

Rules a caller can rely on:

- Only timestamps count: the order of the input rows (late-arriving, unsorted) never changes the result.
- A feature row at exactly the label's timestamp counts.
- Two feature rows with the same key and timestamp: the one later in input order wins.
- Whole rows are matched: a matched row's null value stays null (no falling back to an older row).
- Labels with a null key or timestamp, and feature rows with a null key or timestamp, never match.
- The output keeps every label row in input order, adds the feature columns (each ``prefix + name``) and
  ``prefix + feature_ts``, the timestamp of the matched row; all are null where nothing matched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_UNIT_ORDER = ("s", "ms", "us", "ns")
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


@dataclass(frozen=True)
class JoinSpec:
    """What to join on and what to attach; `validate` checks it against both sides' schemas."""

    join_key: str
    label_ts: str
    feature_ts: str = "feature_timestamp"
    feature_columns: tuple[str, ...] | None = None
    ttl_s: int | None = None
    prefix: str = ""

    def validate(self, labels: pa.Schema, features: pa.Schema) -> tuple[str, ...]:
        """The feature columns to attach; raises naming the offending column when the inputs cannot join."""
        if self.ttl_s is not None and self.ttl_s < 0:
            raise ValueError(f"ttl_s must be >= 0 seconds (or None for no expiry), got {self.ttl_s}")
        _require(labels, "labels", (self.join_key, self.label_ts))
        _require(features, "features", (self.join_key, self.feature_ts))
        _check_key_types(labels.field(self.join_key), features.field(self.join_key))
        label_ts, feature_ts = labels.field(self.label_ts), features.field(self.feature_ts)
        for side, field in (("labels", label_ts), ("features", feature_ts)):
            if not pa.types.is_timestamp(field.type):
                raise TypeError(
                    f"{side} column '{field.name}' must be a timestamp, not {field.type}: "
                    "cast it, e.g. pc.cast(column, pa.timestamp('us', tz='UTC'))"
                )
        if (label_ts.type.tz is None) != (feature_ts.type.tz is None):
            raise TypeError(
                f"labels '{label_ts.name}' ({label_ts.type}) and features '{feature_ts.name}' ({feature_ts.type}) "
                "mix a time-zone-aware and a naive timestamp: make both UTC, e.g. pa.timestamp('us', tz='UTC')"
            )
        return self._attached(labels, features)

    def _attached(self, labels: pa.Schema, features: pa.Schema) -> tuple[str, ...]:
        if self.feature_columns is None:
            attached = tuple(n for n in features.names if n not in (self.join_key, self.feature_ts))
        else:
            attached = tuple(self.feature_columns)
            _require(features, "features", attached)
            if self.join_key in attached or self.feature_ts in attached:
                raise ValueError(f"feature_columns must not name the join key or '{self.feature_ts}': {attached}")
        clashes = [n for n in self.output_names(attached) if n in labels.names]
        if clashes:
            raise ValueError(
                f"labels already have column(s) {', '.join(clashes)} that the join would add: "
                "rename them or pass a prefix, e.g. prefix='driver_'"
            )
        return attached

    def output_names(self, attached: tuple[str, ...]) -> list[str]:
        return [self.prefix + n for n in (*attached, self.feature_ts)]

    def output_schema(self, labels: pa.Schema, features: pa.Schema) -> pa.Schema:
        attached = self.validate(labels, features)
        added = [features.field(n).with_name(self.prefix + n) for n in (*attached, self.feature_ts)]
        return pa.schema([*labels, *(f.with_nullable(True) for f in added)])


def point_in_time_join_table(
    labels: pa.Table,
    features: pa.Table,
    join_key: str,
    label_ts: str,
    feature_ts: str = "feature_timestamp",
    feature_columns: list[str] | None = None,
    ttl_s: int | None = None,
    prefix: str = "",
) -> pa.Table:
    """Attach to every label row its key's latest feature row at or before the label's timestamp.

    See the module docstring for the exact rules (ties, nulls, TTL, output columns). Vectorized: one sort of
    the feature rows and one binary search per label, no per-row Python.
    """
    spec = JoinSpec(join_key, label_ts, feature_ts, tuple(feature_columns) if feature_columns else None, ttl_s, prefix)
    return join_with_spec(labels, features, spec)


def join_with_spec(labels: pa.Table, features: pa.Table, spec: JoinSpec) -> pa.Table:
    """`point_in_time_join_table` with its arguments in a `JoinSpec` (what the distributed join ships around)."""
    attached = spec.validate(labels.schema, features.schema)
    matched = _match(labels, features, spec)
    indices = pa.array(matched, mask=matched < 0, type=pa.int64())
    taken = features.select([*attached, spec.feature_ts]).take(indices)
    out = labels
    for name, column in zip(spec.output_names(attached), taken.columns, strict=True):
        out = out.append_column(name, column)
    return out


def _match(labels: pa.Table, features: pa.Table, spec: JoinSpec) -> np.ndarray:
    """For each label row, the index of its matching feature row, or -1."""
    unit = _finest_unit(labels.schema.field(spec.label_ts).type, features.schema.field(spec.feature_ts).type)
    label_codes, feature_codes = _key_codes(labels[spec.join_key], features[spec.join_key])
    label_times, label_valid = _ticks(labels[spec.label_ts], unit)
    feature_times, feature_valid = _ticks(features[spec.feature_ts], unit)
    label_valid &= label_codes >= 0
    usable = np.flatnonzero(feature_valid & (feature_codes >= 0))
    result = np.full(labels.num_rows, -1, dtype=np.int64)
    if usable.size == 0 or not label_valid.any():
        return result
    f_codes, f_times = feature_codes[usable], feature_times[usable]
    l_rows = np.flatnonzero(label_valid)
    l_codes, l_times = label_codes[l_rows], label_times[l_rows]
    f_sort, l_sort = _composite(f_codes, f_times, l_codes, l_times)
    order = _argsort_ties_in_input_order(f_sort)
    # Equal (key, time) rows are in input order, so side="right" lands on the last of them.
    position = np.searchsorted(f_sort[order], l_sort, side="right") - 1
    candidate = order[np.maximum(position, 0)]
    hit = (position >= 0) & (f_codes[candidate] == l_codes)
    if spec.ttl_s is not None:
        hit &= l_times - f_times[candidate] <= spec.ttl_s * _PER_SECOND[unit]
    result[l_rows[hit]] = usable[candidate[hit]]
    return result


def _argsort_ties_in_input_order(values: np.ndarray) -> np.ndarray:
    """A stable argsort, faster than numpy's: an unstable sort, then only the tied runs put in input order."""
    order = np.argsort(values)
    ordered = values[order]
    tied = np.zeros(values.size, dtype=bool)
    same = ordered[1:] == ordered[:-1]
    tied[1:] |= same
    tied[:-1] |= same
    positions = np.flatnonzero(tied)
    if positions.size:
        runs = order[positions]
        order[positions] = runs[np.lexsort((runs, ordered[positions]))]
    return order


def _composite(
    f_codes: np.ndarray, f_times: np.ndarray, l_codes: np.ndarray, l_times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One int64 per row ordered like (key code, time), so a single sort and searchsorted do the join."""
    low = int(min(f_times.min(), l_times.min()))
    span = int(max(f_times.max(), l_times.max())) - low + 1
    codes = int(max(f_codes.max(), l_codes.max())) + 1
    if codes * span < 2**62:
        return f_codes * span + (f_times - low), l_codes * span + (l_times - low)
    # Times too spread for the key space: rank them first (order-preserving, so the join is unchanged).
    ranks = np.unique(np.concatenate([f_times, l_times]), return_inverse=True)[1]
    span = int(ranks.max()) + 1
    return f_codes * span + ranks[: f_times.size], l_codes * span + ranks[f_times.size :]


def _key_codes(label_keys: pa.ChunkedArray, feature_keys: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Dense int64 codes shared by both sides (equal keys, equal codes); -1 for a null key."""
    if not _is_string(label_keys.type):
        offsets = _integer_offsets(label_keys, feature_keys)
        if offsets is not None:
            return offsets
    common = pa.large_string() if _is_string(label_keys.type) else pa.int64()
    both = pa.chunked_array([*label_keys.cast(common).chunks, *feature_keys.cast(common).chunks], type=common)
    encoded = pc.dictionary_encode(both.combine_chunks())
    codes = encoded.indices.fill_null(-1).to_numpy().astype(np.int64, copy=False)
    return codes[: len(label_keys)], codes[len(label_keys) :]


def _integer_offsets(
    label_keys: pa.ChunkedArray, feature_keys: pa.ChunkedArray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Integer keys minus their minimum, when their range is small enough to serve as codes (no hashing)."""
    sides = [keys.cast(pa.int64()) for keys in (label_keys, feature_keys)]
    bounds = [pc.min_max(keys).as_py() for keys in sides]
    lows = [b["min"] for b in bounds if b["min"] is not None]
    highs = [b["max"] for b in bounds if b["max"] is not None]
    if not lows or max(highs) - min(lows) >= 2**31:
        return None
    low = min(lows)
    codes = [pc.subtract(keys, low).fill_null(-1).to_numpy() for keys in sides]
    return codes[0], codes[1]


def _ticks(column: pa.ChunkedArray, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps as int64 ticks of ``unit`` (UTC for zoned columns) and a validity mask."""
    as_int = column.cast(pa.timestamp(unit, tz=column.type.tz)).cast(pa.int64())
    valid = as_int.is_valid().to_numpy(zero_copy_only=False)
    return as_int.fill_null(0).to_numpy(), valid


def _finest_unit(a: pa.TimestampType, b: pa.TimestampType) -> str:
    finest: str = max(a.unit, b.unit, key=_UNIT_ORDER.index)
    return finest


def _is_string(kind: pa.DataType) -> bool:
    string: bool = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    return string


def _check_key_types(label: pa.Field, feature: pa.Field) -> None:
    for side, field in (("labels", label), ("features", feature)):
        if not (_is_string(field.type) or pa.types.is_integer(field.type)):
            raise TypeError(f"{side} join key '{field.name}' must be a string or an integer, not {field.type}")
    if _is_string(label.type) != _is_string(feature.type):
        raise TypeError(
            f"join key '{label.name}' is {label.type} in labels but {feature.type} in features: "
            "cast one side so both are strings or both are integers"
        )


def _require(schema: pa.Schema, side: str, names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in schema.names]
    if missing:
        raise ValueError(f"{side} lack column(s) {', '.join(missing)}; they have: {', '.join(schema.names)}")
