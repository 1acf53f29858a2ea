"""The DSL type checker: result types, promotion, refused combinations and their messages."""

from __future__ import annotations

import pytest

from ma_ray.palette.dsl import DslError, DslTypeError, DslUnknownReferenceError, compile_expression
from ma_ray.palette.types import FeatureType as T

TRIPS = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"
TYPES = {
    TRIPS: T.INT,
    "@palette:rideshare:driver_stats:trip_count_30d:driver_id": T.INT,
    "@basis:surge": T.FLOAT,
    "@basis:city": T.STRING,
    "@basis:is_pool": T.BOOL,
    "@basis:request_ts": T.TIMESTAMP,
}


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("1 + 2", T.INT),
        (f"{TRIPS} * 2 - 1 % 3", T.INT),
        (f"{TRIPS} + 1.5", T.FLOAT),
        ("4 / 2", T.FLOAT),
        ("-@basis:surge", T.FLOAT),
        (f"{TRIPS} > @basis:surge", T.BOOL),
        ("@basis:request_ts <= @basis:request_ts", T.BOOL),
        ("@basis:city == 'sf' or not @basis:is_pool", T.BOOL),
        ("@basis:city in ['sf', 'nyc']", T.BOOL),
        (f"{TRIPS} in [1, 2.5]", T.BOOL),
        (f"nfill({TRIPS}, 0)", T.INT),
        (f"nfill({TRIPS}, 0.5)", T.FLOAT),
        ("coalesce(null, @basis:city, 'x')", T.STRING),
        ("if(@basis:is_pool, @basis:request_ts, null)", T.TIMESTAMP),
        (f"if(null, {TRIPS}, 1.0)", T.FLOAT),
        (f"log({TRIPS})", T.FLOAT),
        ("sqrt(4)", T.FLOAT),
        (f"abs({TRIPS})", T.INT),
        (f"min({TRIPS}, 3)", T.INT),
        (f"max({TRIPS}, 3.0)", T.FLOAT),
        (f"clip({TRIPS}, 0, 10)", T.INT),
        (f"bucketize({TRIPS}, [1, 10, 100])", T.INT),
        ("hour(@basis:request_ts) + day_of_week(@basis:request_ts)", T.INT),
        ("days_since(@basis:request_ts, @basis:request_ts)", T.FLOAT),
        ("lower(@basis:city)", T.STRING),
        ("len(@basis:city)", T.INT),
        ("null + 1", T.INT),
        ("@basis:is_pool == null", T.BOOL),
    ],
)
def test_result_types(source: str, kind: T) -> None:
    assert compile_expression(source, TYPES).output_type == kind


@pytest.mark.parametrize(
    ("source", "fragments"),
    [
        ("@basis:city + 1", ["'@basis:city + 1'", "'@basis:city' is string", "int or float"]),
        ("@basis:city < 'b'", ["'<'", "'@basis:city' is string"]),
        ("@basis:is_pool > true", ["'>'", "is bool"]),
        (f"{TRIPS} == @basis:city", [f"'{TRIPS}' is int", "'@basis:city' is string"]),
        ("if(@basis:city, 1, 2)", ["condition of if", "'@basis:city' is string"]),
        ("if(true, 1, 'a')", ["'1' is int", "'a'\" is string"]),
        ("@basis:is_pool and 1", ["'and'", "'1' is int"]),
        ("not 'a'", ["'not'", "is string"]),
        ("-'a'", ["unary '-'", "is string"]),
        ("log(@basis:city)", ["log()", "is string"]),
        ("hour(@basis:surge)", ["hour()", "needs timestamp", "is float"]),
        ("lower(1)", ["lower()", "needs string", "is int"]),
        ("@basis:request_ts + 1", ["'+'", "is timestamp"]),
        ("@basis:city in [1, 2]", ["'@basis:city' is string", "'1' is int"]),
        ("log(1, 2)", ["log() takes 1 arguments but got 2"]),
        ("coalesce(1)", ["coalesce() takes at least 2 arguments but got 1"]),
        ("bucketize(1, 2)", ["needs a [list]"]),
        ("bucketize(1, [3, 2])", ["strictly increasing"]),
        ("bucketize(1, ['a'])", ["list of numbers"]),
        ("[1, 2]", ["only allowed after 'in'"]),
        ("null", ["cannot infer the type of null"]),
        ("null + null", ["cannot infer the type of null"]),
    ],
)
def test_type_errors_name_the_part_and_types(source: str, fragments: list[str]) -> None:
    with pytest.raises(DslTypeError) as caught:
        compile_expression(source, TYPES)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_unknown_ref_suggests_close_names() -> None:
    with pytest.raises(DslUnknownReferenceError) as caught:
        compile_expression("@palette:rideshare:driver_stats:trip_count_7dd:driver_id + 1", TYPES)
    assert caught.value.suggestions[0] == TRIPS
    assert "@palette:rideshare:driver_stats:trip_count_30d:driver_id" in caught.value.suggestions
    assert "did you mean" in str(caught.value)


def test_unknown_ref_without_close_names() -> None:
    with pytest.raises(DslUnknownReferenceError) as caught:
        compile_expression("@basis:zzzzzzzzzzzzzzzzzzzz", TYPES)
    assert caught.value.suggestions == []


def test_references_lists_every_ref_even_when_folded_away() -> None:
    compiled = compile_expression(f"if(true, {TRIPS}, 0) + if(false, hour(@basis:request_ts), 1)", TYPES)
    assert compiled.references == frozenset({TRIPS, "@basis:request_ts"})


def test_all_errors_are_value_errors() -> None:
    for error in (DslTypeError, DslUnknownReferenceError):
        assert issubclass(error, DslError)
    assert issubclass(DslError, ValueError)
