"""Concrete results of every operator and function, nulls included, checked in both modes."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from ma_ray.palette.dsl import DslError, DslTypeError, compile_expression
from ma_ray.palette.types import FeatureType as T

TYPES = {
    "@basis:i": T.INT,
    "@basis:j": T.INT,
    "@basis:f": T.FLOAT,
    "@basis:b": T.BOOL,
    "@basis:c": T.BOOL,
    "@basis:s": T.STRING,
    "@basis:t": T.TIMESTAMP,
    "@basis:now": T.TIMESTAMP,
}
BIG = 2**63 - 1


def evaluate(source: str, **values: Any) -> Any:
    """The scalar result, after asserting the vectorized one is the same."""
    compiled = compile_expression(source, TYPES)
    row = {f"@basis:{name}": value for name, value in values.items()}
    columns = {name: pa.array([row.get(name)], kind.arrow) for name, kind in TYPES.items()}
    scalar = compiled.scalar(row)
    (vector,) = compiled.vectorized(columns).to_pylist()
    if isinstance(scalar, float) and isinstance(vector, float):
        assert math.isclose(scalar, vector, rel_tol=1e-12)
    else:
        assert (type(scalar), scalar) == (type(vector), vector)
    return scalar


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("@basis:i + @basis:j", {"i": 2, "j": 3}, 5),
        ("@basis:i + @basis:j", {"i": 2}, None),
        ("@basis:i - 1.5", {"i": 2}, 0.5),
        ("@basis:i * @basis:j", {"i": -4, "j": 3}, -12),
        ("@basis:i * @basis:j", {"i": BIG, "j": 2}, None),  # int64 overflow is null
        ("@basis:i + 1", {"i": BIG}, None),
        ("-@basis:i", {"i": -(2**63)}, None),
        ("abs(@basis:i)", {"i": -(2**63)}, None),
        ("@basis:i / @basis:j", {"i": 7, "j": 2}, 3.5),
        ("@basis:i / @basis:j", {"i": 7, "j": 0}, None),
        ("@basis:f / 0", {"f": 0.0}, None),
        ("@basis:i % @basis:j", {"i": -7, "j": 3}, 2),  # floored, as in Python
        ("@basis:i % @basis:j", {"i": 7, "j": -3}, -2),
        ("@basis:i % @basis:j", {"i": 7, "j": 0}, None),
        ("@basis:f % 2", {"f": -0.5}, 1.5),
        ("@basis:f % 0.0", {"f": 1.0}, None),
        ("@basis:f * 1e308", {"f": 10.0}, None),  # overflow to inf is null
        ("-@basis:f", {"f": 1.5}, -1.5),
        ("@basis:f", {"f": float("nan")}, None),  # NaN input is null
        ("@basis:f", {"f": float("inf")}, None),
    ],
)
def test_arithmetic(source: str, values: dict[str, Any], expected: Any) -> None:
    assert evaluate(source, **values) == expected


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("@basis:i < @basis:f", {"i": 1, "f": 1.5}, True),
        ("@basis:i >= @basis:f", {"i": 1, "f": 1.5}, False),
        ("@basis:i == @basis:j", {"i": 1, "j": 1}, True),
        ("@basis:i != @basis:j", {"i": 1}, None),
        ("@basis:i <= 1 and @basis:i > 0", {"i": 1}, True),
        ("@basis:s == 'a'", {"s": "a"}, True),
        ("@basis:s != ''", {"s": ""}, False),
        (
            "@basis:t < @basis:now",
            {"t": datetime(2024, 1, 1, tzinfo=UTC), "now": datetime(2024, 1, 2, tzinfo=UTC)},
            True,
        ),
        ("@basis:b == @basis:c", {"b": True, "c": False}, False),
        ("@basis:i in [1, 2]", {"i": 2}, True),
        ("@basis:i in [1, 2]", {"i": 3}, False),
        ("@basis:i in [1, 2]", {}, None),
        ("@basis:f in [0.0]", {"f": -0.0}, True),
        ("@basis:s in ['a', 'b']", {"s": "b"}, True),
        ("@basis:b in [true]", {"b": False}, False),
        ("@basis:i in []", {"i": 1}, False),
    ],
)
def test_comparisons_and_in(source: str, values: dict[str, Any], expected: Any) -> None:
    assert evaluate(source, **values) == expected


KLEENE = [(True, True), (True, False), (True, None), (False, False), (False, None), (None, None)]


@pytest.mark.parametrize(("b", "c"), KLEENE + [(y, x) for x, y in KLEENE])
def test_kleene_logic(b: bool | None, c: bool | None) -> None:
    expected_and = False if False in (b, c) else (None if None in (b, c) else True)
    expected_or = True if True in (b, c) else (None if None in (b, c) else False)
    assert evaluate("@basis:b and @basis:c", b=b, c=c) == expected_and
    assert evaluate("@basis:b or @basis:c", b=b, c=c) == expected_or
    assert evaluate("not @basis:b", b=b) == (None if b is None else not b)


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("if(@basis:b, 1, 2)", {"b": True}, 1),
        ("if(@basis:b, 1, 2)", {"b": False}, 2),
        ("if(@basis:b, 1, 2)", {}, 2),  # a null condition takes the else branch
        ("if(@basis:b, null, 2.5)", {"b": True}, None),
        ("nfill(@basis:i, 0)", {}, 0),
        ("nfill(@basis:i, 0)", {"i": 5}, 5),
        ("nfill(@basis:i, 0.5)", {"i": 5}, 5.0),
        ("coalesce(@basis:i, @basis:j, 9)", {"j": 4}, 4),
        ("coalesce(@basis:i, @basis:j)", {}, None),
        ("coalesce(@basis:s, 'none')", {}, "none"),
        ("log(@basis:f)", {"f": math.e}, 1.0),
        ("log(@basis:f)", {"f": 0.0}, None),
        ("log(@basis:i)", {"i": -1}, None),
        ("log1p(@basis:f)", {"f": 0.0}, 0.0),
        ("log1p(@basis:f)", {"f": -1.0}, None),
        ("exp(@basis:i)", {"i": 0}, 1.0),
        ("exp(@basis:f)", {"f": 1000.0}, None),
        ("exp(@basis:f)", {"f": -1000.0}, 0.0),
        ("sqrt(@basis:i)", {"i": 9}, 3.0),
        ("sqrt(@basis:f)", {"f": -1.0}, None),
        ("abs(@basis:i)", {"i": -3}, 3),
        ("abs(@basis:f)", {"f": -2.5}, 2.5),
        ("min(@basis:i, @basis:j)", {"i": 3, "j": -3}, -3),
        ("max(@basis:i, @basis:f)", {"i": 3, "f": 2.5}, 3.0),
        ("max(@basis:i, @basis:j)", {"i": 3}, None),
        ("clip(@basis:i, 0, 10)", {"i": 11}, 10),
        ("clip(@basis:i, 0, 10)", {"i": -1}, 0),
        ("clip(@basis:f, 0, 10)", {"f": 2.5}, 2.5),
        ("bucketize(@basis:i, [0, 10, 100])", {"i": -5}, 0),
        ("bucketize(@basis:i, [0, 10, 100])", {"i": 10}, 2),
        ("bucketize(@basis:i, [0, 10, 100])", {"i": 1000}, 3),
        ("bucketize(@basis:f, [0, 10.5])", {"f": 10.5}, 2),
        ("bucketize(@basis:i, [0, 10])", {}, None),
        ("lower(@basis:s)", {"s": "AbC É"}, "abc É"),  # ASCII letters only
        ("len(@basis:s)", {"s": "héllo"}, 5),
        ("len(@basis:s)", {"s": ""}, 0),
        ("len(@basis:s)", {}, None),
    ],
)
def test_functions(source: str, values: dict[str, Any], expected: Any) -> None:
    assert evaluate(source, **values) == expected


@pytest.mark.parametrize(
    ("ts", "hour", "weekday"),
    [
        (datetime(2024, 5, 6, 13, 30, tzinfo=UTC), 13, 0),  # a Monday
        (datetime(2024, 5, 12, 23, 59, tzinfo=UTC), 23, 6),
        (datetime(1969, 12, 31, 23, 0, tzinfo=UTC), 23, 2),  # before the epoch
        (datetime(1, 1, 1, tzinfo=UTC), 0, 0),
    ],
)
def test_time_functions(ts: datetime, hour: int, weekday: int) -> None:
    assert evaluate("hour(@basis:t)", t=ts) == hour
    assert evaluate("day_of_week(@basis:t)", t=ts) == weekday
    assert evaluate("hour(@basis:t)") is None


def test_days_since() -> None:
    then, now = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, 12, tzinfo=UTC)
    assert evaluate("days_since(@basis:t, @basis:now)", t=then, now=now) == 1.5
    assert evaluate("days_since(@basis:t, @basis:now)", t=now, now=then) == -1.5
    assert evaluate("days_since(@basis:t, @basis:now)", t=then) is None


def test_constant_expression_broadcasts() -> None:
    compiled = compile_expression("1 + 2", TYPES)
    assert compiled.vectorized({"@basis:i": pa.array([1, 2, 3])}).to_pylist() == [3, 3, 3]
    assert compile_expression("1 / 0", TYPES).vectorized(pa.table({"x": [1, 2]})).to_pylist() == [None, None]


def test_vectorized_inputs() -> None:
    compiled = compile_expression("@basis:i * 2", TYPES)
    chunked = pa.chunked_array([[1, 2], [None]], pa.int32())
    assert compiled.vectorized({"@basis:i": chunked}).to_pylist() == [2, 4, None]
    batch = pa.RecordBatch.from_pydict({"@basis:i": [5]})
    assert compiled.vectorized(batch).type == pa.int64()
    with pytest.raises(DslError, match="missing column"):
        compiled.vectorized({"@basis:j": pa.array([1])})
    with pytest.raises(DslTypeError):
        compiled.vectorized({"@basis:i": pa.array(["x"])})
    assert compiled.scalar({}) is None
