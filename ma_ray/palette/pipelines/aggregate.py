"""Vectorized aggregation over Arrow, in two steps that make any split of the input give the same answer.

``partial_aggregate`` turns one block of raw rows into per-entity *states* (counts, sums, minima, maxima,
distinct-value lists, latest (time, value) pairs); ``combine`` merges states of many blocks (any number of
rows per entity) into one state per entity; ``finalize`` turns states into feature values. Means are
sum / count of merged states and distinct counts the length of the merged distinct list, so both are exact
however rows were split across blocks. ``compute_snapshot`` is the single-process composition of the three.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ma_ray.palette.catalog import AggregationFunction
from ma_ray.palette.offline import FEATURE_TIMESTAMP, TIMESTAMP_TYPE
from ma_ray.palette.pipelines.spec import MICROS_PER_SECOND, BoundAggregation, BoundPlan, day_end, epoch_us
from ma_ray.palette.types import FeatureType

F = AggregationFunction
ROWS = "__rows"  # raw rows of the entity inside the widest window
BUCKET = "__bucket"  # hash partition of the entity key, for the shuffle that brings an entity's states together
_COUNT_VALID = pc.CountOptions(mode="only_valid")


def _n(i: int) -> str:
    return f"a{i}_n"


def _s(i: int) -> str:
    return f"a{i}_s"


def _v(i: int) -> str:
    return f"a{i}_v"


def _t(i: int) -> str:
    return f"a{i}_t"


def partial_aggregate(block: pa.Table | pa.RecordBatch, bound: BoundPlan, as_of: date, buckets: int = 0) -> pa.Table:
    """Per-entity states of one block of raw rows (rows outside the widest window are ignored).

    With ``buckets`` > 0 a ``__bucket`` column (a stable hash of the key modulo ``buckets``) is added.
    """
    table = block if isinstance(block, pa.Table) else pa.Table.from_batches([block])
    plan = bound.plan
    micros = _micros(table[plan.time_column])
    end = epoch_us(day_end(as_of))
    inside = pc.and_(
        pc.and_(pc.greater_equal(micros, end - plan.max_window_s * MICROS_PER_SECOND), pc.less(micros, end)),
        pc.is_valid(table[plan.join_key]),
    )
    inside = pc.fill_null(inside, False)
    table, micros = table.filter(inside), micros.filter(inside)
    columns: dict[str, pa.Array] = {
        plan.join_key: _flat(table[plan.join_key]),
        ROWS: pa.repeat(pa.scalar(1), len(table)),
    }
    for i, agg in enumerate(bound.aggregations):
        mask = pc.greater_equal(micros, end - agg.spec.window_s * MICROS_PER_SECOND)
        if agg.spec.filter is not None:
            mask = pc.fill_null(pc.and_kleene(mask, bound.compiled(agg.spec.filter).vectorized(_refs(table))), False)
        columns.update(_row_states(i, agg, _input(table, bound, agg), mask, micros))
    states = _reduce(pa.table(columns), bound, distinct_lists=False)
    return with_buckets(states, plan.join_key, buckets) if buckets else states


def combine(states: pa.Table, bound: BoundPlan) -> pa.Table:
    """Merge states (several rows per entity, from any blocks) into one state row per entity."""
    return _reduce(states.drop_columns([c for c in (BUCKET,) if c in states.column_names]), bound, distinct_lists=True)


def finalize(states: pa.Table, bound: BoundPlan, as_of: date) -> pa.Table:
    """One snapshot row per entity: key, the features (as declared), ``feature_timestamp`` (end of ``as_of``)."""
    plan = bound.plan
    columns: dict[str, pa.Array] = {plan.join_key: _flat(states[plan.join_key])}
    for i, agg in enumerate(bound.aggregations):
        columns[agg.spec.feature] = _cast(_final_value(i, agg, states), agg.spec.type.arrow)
    stamp = day_end(as_of) - timedelta(microseconds=1)
    columns[FEATURE_TIMESTAMP] = pa.repeat(pa.scalar(stamp, TIMESTAMP_TYPE), states.num_rows)
    return pa.table(columns)


def compute_snapshot(blocks: Iterable[pa.Table], bound: BoundPlan, as_of: date) -> pa.Table:
    """All three steps in this process: the snapshot of ``as_of`` from raw blocks, sorted by key."""
    partials = [partial_aggregate(block, bound, as_of) for block in blocks]
    states = pa.concat_tables(partials) if partials else _empty_states(bound)
    return finalize(combine(states, bound), bound, as_of).sort_by(bound.plan.join_key)


def with_buckets(states: pa.Table, key: str, buckets: int) -> pa.Table:
    """Add ``__bucket``: a hash of the key that is the same in every process (pandas' fixed-key SipHash)."""
    values = _flat(states[key]).to_numpy(zero_copy_only=False)
    hashed = pd.util.hash_array(values.astype(object) if values.dtype.kind in "OUS" else values)
    return states.append_column(BUCKET, pa.array((hashed % np.uint64(buckets)).astype(np.int64)))


# ---- row states -------------------------------------------------------------------------------------------
def _row_states(
    i: int, agg: BoundAggregation, value: pa.Array | None, mask: pa.Array, micros: pa.Array
) -> dict[str, pa.Array]:
    """Each raw row as a state of its own: what the reduce step aggregates."""
    function = agg.spec.function
    counted = mask if value is None else pc.and_(mask, pc.is_valid(value))
    counted = pc.fill_null(counted, False)
    if function is F.COUNT:
        return {_n(i): pc.cast(counted, pa.int64())}
    assert value is not None  # binding refuses other functions without an input
    kept = pc.if_else(counted, value, pa.scalar(None, value.type))
    if function in (F.SUM, F.MEAN):
        wide = pa.float64() if function is F.MEAN or agg.input_type is FeatureType.FLOAT else pa.int64()
        return {_s(i): pc.cast(kept, wide), _n(i): pc.cast(counted, pa.int64())}
    if function is F.LAST:
        return {_t(i): pc.if_else(counted, micros, pa.scalar(None, pa.int64())), _v(i): kept}
    return {_v(i): kept}  # min, max, distinct_count


def _input(table: pa.Table, bound: BoundPlan, agg: BoundAggregation) -> pa.Array | None:
    if agg.spec.column is not None:
        column = _flat(table[agg.spec.column])
        kind = agg.input_type
        return column if kind is None or column.type == kind.arrow else column.cast(kind.arrow)
    if agg.spec.value is not None:
        return bound.compiled(agg.spec.value).vectorized(_refs(table))
    return None


def _refs(table: pa.Table) -> dict[str, pa.ChunkedArray]:
    return {f"@basis:{name}": table[name] for name in table.column_names}


# ---- the reduce step, shared by partial and combine -------------------------------------------------------
def _reduce(rows: pa.Table, bound: BoundPlan, distinct_lists: bool) -> pa.Table:
    key = bound.plan.join_key
    specs: list[tuple[str, str, pc.FunctionOptions | None]] = [(ROWS, "sum", None)]
    for i, agg in enumerate(bound.aggregations):
        function = agg.spec.function
        if function is F.COUNT:
            specs.append((_n(i), "sum", None))
        elif function in (F.SUM, F.MEAN):
            specs += [(_s(i), "sum", None), (_n(i), "sum", None)]
        elif function in (F.MIN, F.MAX):
            specs.append((_v(i), str(function), None))
        elif function is F.DISTINCT_COUNT and not distinct_lists:
            specs.append((_v(i), "distinct", _COUNT_VALID))
    grouped = rows.group_by(key).aggregate([(c, f, o) if o else (c, f) for c, f, o in specs])
    result = grouped.rename_columns([_state_name(name, specs) for name in grouped.column_names])
    for i, agg in enumerate(bound.aggregations):
        if agg.spec.function is F.LAST:
            result = _attach(result, key, _latest(rows, key, _t(i), _v(i)))
        elif agg.spec.function is F.DISTINCT_COUNT and distinct_lists:
            result = _attach(result, key, _merged_distinct(rows, key, _v(i)))
    return result.select([key, ROWS, *(name for i, agg in enumerate(bound.aggregations) for name in _states(i, agg))])


def _states(i: int, agg: BoundAggregation) -> tuple[str, ...]:
    """The state columns of aggregation ``i``, in the one order every step writes them."""
    function = agg.spec.function
    if function is F.COUNT:
        return (_n(i),)
    if function in (F.SUM, F.MEAN):
        return (_s(i), _n(i))
    if function is F.LAST:
        return (_t(i), _v(i))
    return (_v(i),)


def _state_name(name: str, specs: list[tuple[str, str, pc.FunctionOptions | None]]) -> str:
    for column, function, _ in specs:
        if name == f"{column}_{function}":
            return column
    return name


def _latest(rows: pa.Table, key: str, t: str, v: str) -> pa.Table:
    """Per key, the value of the latest valid row (ties: the largest value, so any split gives one answer)."""
    valid = rows.select([key, t, v]).filter(pc.is_valid(rows[t]))
    ordered = valid.sort_by([(key, "ascending"), (t, "ascending"), (v, "ascending")])
    latest = ordered.group_by(key, use_threads=False).aggregate([(t, "last"), (v, "last")])
    return latest.rename_columns([key, t, v])


def _merged_distinct(rows: pa.Table, key: str, v: str) -> pa.Table:
    lists = rows[v].combine_chunks()
    parents = pc.list_parent_indices(lists)
    flat = pa.table({key: _flat(rows[key]).take(parents), v: pc.list_flatten(lists)})
    merged = flat.group_by(key).aggregate([(v, "distinct", _COUNT_VALID)])
    return merged.rename_columns([v if name == f"{v}_distinct" else name for name in merged.column_names])


def _attach(result: pa.Table, key: str, extra: pa.Table) -> pa.Table:
    """Add ``extra``'s columns to ``result`` by key (a lookup: keys of ``result`` absent from ``extra`` get null)."""
    index = pc.index_in(result[key], value_set=_flat(extra[key]))
    for name in extra.column_names:
        if name != key:
            result = result.append_column(name, _flat(extra[name]).take(index))
    return result


def _final_value(i: int, agg: BoundAggregation, states: pa.Table) -> pa.Array:
    function = agg.spec.function
    if function is F.COUNT:
        return pc.fill_null(states[_n(i)], 0)
    if function in (F.SUM, F.MEAN):
        n = states[_n(i)]
        total = pc.divide(states[_s(i)], pc.cast(n, pa.float64())) if function is F.MEAN else states[_s(i)]
        return pc.if_else(pc.greater(n, 0), total, pa.scalar(None, total.type))
    if function is F.DISTINCT_COUNT:
        return pc.fill_null(pc.cast(pc.list_value_length(states[_v(i)]), pa.int64()), 0)
    return states[_v(i)]


def _empty_states(bound: BoundPlan) -> pa.Table:
    """The states of zero raw rows, for a window with no data."""
    fields = []
    for name in bound.columns:
        kind = bound.raw_types[name]
        fields.append(pa.field(name, kind.arrow))
    empty = pa.table({f.name: pa.array([], f.type) for f in fields})
    return partial_aggregate(empty, bound, date(1970, 1, 1))


# ---- helpers ---------------------------------------------------------------------------------------------
def _micros(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Epoch microseconds of a timestamp column, whatever its unit (tz-naive values are taken as UTC)."""
    column = _flat(column)
    return pc.cast(pc.cast(column, pa.timestamp("us", tz=column.type.tz), safe=False), pa.int64())


def _flat(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _cast(values: pa.Array | pa.ChunkedArray, arrow_type: pa.DataType) -> pa.Array:
    values = _flat(values)
    return values if values.type == arrow_type else values.cast(arrow_type)
