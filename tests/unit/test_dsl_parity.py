"""The training-serving guarantee: for random well-typed expressions and random rows with nulls,
the scalar and the vectorized compilations give the same value on every row."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ma_ray.palette.dsl import compile_expression
from ma_ray.palette.types import FeatureType as T

REFS: dict[T, list[str]] = {
    T.INT: ["@palette:rideshare:driver_stats:trip_count_7d:driver_id", "@basis:i2"],
    T.FLOAT: ["@palette:rideshare:driver_stats:rating:driver_id", "@basis:f2"],
    T.BOOL: ["@basis:b1", "@basis:b2"],
    T.STRING: ["@basis:s1", "@basis:s2"],
    T.TIMESTAMP: ["@basis:request_ts", "@palette:rideshare:driver_stats:last_trip:driver_id"],
}
TYPES = {name: kind for kind, names in REFS.items() for name in names}
INT_EDGES = [0, 1, -1, 2, 7, -7, 2**31, 2**62, 2**63 - 1, -(2**63)]

int_lit = st.one_of(st.integers(-20, 20), st.sampled_from(INT_EDGES[:-1]))
float_lit = st.one_of(st.sampled_from([0.0, -0.0, 0.5, -1.5, 1e-3, 2.5, 1e300]), st.floats(-1e6, 1e6, width=32))
str_lit = st.sampled_from(["", "a", "A", "abc", "ABC", "x y", "é", "É"])


def lit_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, float):
        return repr(value) if value >= 0 else f"-{-value!r}"
    return str(value)


def any_numeric(depth: int) -> st.SearchStrategy[str]:
    return st.one_of(expr(T.INT, depth), expr(T.FLOAT, depth))


def leaf(kind: T) -> st.SearchStrategy[str]:
    refs = st.sampled_from(REFS[kind])
    literal = {
        T.INT: int_lit.map(lit_text),
        T.FLOAT: float_lit.map(lit_text),
        T.BOOL: st.booleans().map(lit_text),
        T.STRING: str_lit.map(lit_text),
    }.get(kind)
    return refs if literal is None else st.one_of(refs, refs, literal)


def fmt(template: str, *parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map(lambda args: template.format(*args))


def generic(kind: T, depth: int) -> list[st.SearchStrategy[str]]:
    """Forms every type has: if, nfill, coalesce, with nulls mixed in."""
    sub = expr(kind, depth)
    maybe_null = st.one_of(sub, st.just("null"))
    return [
        fmt("if({}, {}, {})", expr(T.BOOL, depth), sub, maybe_null),
        fmt("nfill({}, {})", sub, sub),
        fmt("coalesce({}, {}, {})", maybe_null, sub, sub),
    ]


def numeric_forms(kind: T, depth: int) -> list[st.SearchStrategy[str]]:
    sub = expr(kind, depth)
    mixed = any_numeric(depth) if kind == T.FLOAT else sub
    forms = [
        fmt("({}) {} ({})", sub, st.sampled_from(["+", "-", "*", "%"]), mixed),
        fmt("-({})", sub),
        fmt("abs({})", sub),
        fmt("{}({}, {})", st.sampled_from(["min", "max"]), sub, mixed),
        fmt("clip({}, {}, {})", sub, mixed, mixed),
        fmt("({}) + null", sub),
    ]
    if kind == T.FLOAT:
        forms += [
            fmt("({}) / ({})", any_numeric(depth), any_numeric(depth)),
            fmt("{}({})", st.sampled_from(["log", "log1p", "exp", "sqrt"]), any_numeric(depth)),
            fmt("days_since({}, {})", expr(T.TIMESTAMP, depth), expr(T.TIMESTAMP, depth)),
        ]
    else:
        bounds = st.lists(st.one_of(int_lit, float_lit), min_size=1, max_size=4, unique=True)
        forms += [
            fmt("bucketize({}, [{}])", any_numeric(depth), bounds.map(lambda b: ", ".join(map(lit_text, sorted(b))))),
            fmt("{}({})", st.sampled_from(["hour", "day_of_week"]), expr(T.TIMESTAMP, depth)),
            fmt("len({})", expr(T.STRING, depth)),
        ]
    return forms


def bool_forms(depth: int) -> list[st.SearchStrategy[str]]:
    sub = expr(T.BOOL, depth)
    compare = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    num_list = st.lists(st.one_of(int_lit, float_lit), max_size=4).map(lambda v: ", ".join(map(lit_text, v)))
    str_list = st.lists(str_lit, max_size=4).map(lambda v: ", ".join(map(lit_text, v)))
    return [
        fmt("({}) {} ({})", sub, st.sampled_from(["and", "or"]), st.one_of(sub, st.just("null"))),
        fmt("not ({})", sub),
        fmt("({}) {} ({})", any_numeric(depth), compare, any_numeric(depth)),
        fmt("({}) {} ({})", expr(T.TIMESTAMP, depth), compare, expr(T.TIMESTAMP, depth)),
        fmt("({}) {} ({})", expr(T.STRING, depth), st.sampled_from(["==", "!="]), expr(T.STRING, depth)),
        fmt("({}) {} ({})", sub, st.sampled_from(["==", "!="]), sub),
        fmt("({}) in [{}]", any_numeric(depth), num_list),
        fmt("({}) in [{}]", expr(T.STRING, depth), str_list),
    ]


@functools.cache
def expr(kind: T, depth: int) -> st.SearchStrategy[str]:
    if depth <= 0:
        return leaf(kind)
    forms = generic(kind, depth - 1)
    if kind.is_numeric:
        forms += numeric_forms(kind, depth - 1)
    elif kind == T.BOOL:
        forms += bool_forms(depth - 1)
    elif kind == T.STRING:
        forms.append(fmt("lower({})", expr(T.STRING, depth - 1)))
    return st.one_of(leaf(kind), *forms)


VALUES: dict[T, st.SearchStrategy[Any]] = {
    T.INT: st.one_of(st.integers(-1000, 1000), st.sampled_from(INT_EDGES), st.integers(-(2**63), 2**63 - 1)),
    T.FLOAT: st.one_of(
        st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e308, -1e308, 5e-324, float("nan"), float("inf")]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(-100, 100),
    ),
    T.BOOL: st.booleans(),
    T.STRING: st.one_of(str_lit, st.text(st.characters(codec="utf-8"), max_size=6)),
    T.TIMESTAMP: st.one_of(
        st.datetimes(timezones=st.just(UTC)),
        st.datetimes(datetime(1969, 12, 30), datetime(1970, 1, 3), timezones=st.just(UTC)),
    ),
}


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 6))
    out = []
    for _ in range(count):
        row = {}
        for name, kind in TYPES.items():
            value = draw(st.one_of(st.none(), VALUES[kind], VALUES[kind]))
            if value is not None or draw(st.booleans()):  # a missing key is null too
                row[name] = value
        out.append(row)
    return out


def same(scalar: Any, vector: Any) -> bool:
    if isinstance(scalar, float) and isinstance(vector, float):
        return scalar == vector or math.isclose(scalar, vector, rel_tol=1e-9)
    return type(scalar) is type(vector) and scalar == vector


def check_parity(source: str, table_rows: list[dict[str, Any]]) -> None:
    compiled = compile_expression(source, TYPES)
    table = pa.table({name: pa.array([r.get(name) for r in table_rows], kind.arrow) for name, kind in TYPES.items()})
    vector = compiled.vectorized(table)
    assert vector.type == compiled.output_type.arrow
    assert len(vector) == len(table_rows)
    for row, got in zip(table_rows, vector.to_pylist(), strict=True):
        expected = compiled.scalar(row)
        assert expected is None or not (isinstance(expected, float) and math.isnan(expected))
        assert same(expected, got), f"{source!r} on {row}: scalar {expected!r} != vector {got!r}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(list(T)).flatmap(lambda kind: expr(kind, 3)), table_rows=rows())
def test_scalar_and_vectorized_agree(source: str, table_rows: list[dict[str, Any]]) -> None:
    check_parity(source, table_rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=expr(T.FLOAT, 2), table_rows=rows())
def test_float_expressions_agree(source: str, table_rows: list[dict[str, Any]]) -> None:
    check_parity(source, table_rows)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from([T.INT, T.FLOAT, T.BOOL]).flatmap(lambda kind: st.one_of(*numeric_or_bool_forms(kind))),
    table_rows=rows(),
)
def test_single_operators_agree(source: str, table_rows: list[dict[str, Any]]) -> None:
    """One operator over leaves, so that every operator meets edge values (signs, zeros, extremes) often."""
    check_parity(source, table_rows)


def numeric_or_bool_forms(kind: T) -> list[st.SearchStrategy[str]]:
    return bool_forms(0) if kind == T.BOOL else numeric_forms(kind, 0)
