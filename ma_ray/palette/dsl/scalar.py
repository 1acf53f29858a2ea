"""The scalar compiler: typed form -> nested closures over a dict of values, for online serving.

Each node becomes one closure built at compile time, so a call walks no tree. Every function here has a
twin under the same op key in ``vector.py``; the two must agree on every input, nulls included.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ma_ray.palette.dsl.ir import Apply, Column, Const, Typed
from ma_ray.palette.types import FeatureType

Values = Mapping[str, Any]
Scalar = Callable[[Values], Any]

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_US_PER_HOUR = 3_600_000_000
_US_PER_DAY = 86_400_000_000
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _int(value: int) -> int | None:
    """Int results outside int64 are null (the vector side detects the same overflow)."""
    return value if _INT_MIN <= value <= _INT_MAX else None


def _float(value: float) -> float | None:
    """Float results that are inf or NaN are null, so no NaN ever reaches a caller."""
    return value if math.isfinite(value) else None


def _div(x: float, y: float) -> float | None:
    return None if y == 0 else _float(x / y)


def _mod(x: Any, y: Any) -> Any:
    return None if y == 0 else x % y  # Python's floored modulo, which numpy.remainder also computes


def _exp(x: float) -> float | None:
    try:
        return math.exp(x)
    except OverflowError:
        return None


def _micros(ts: datetime) -> int:
    return (ts - _EPOCH) // _MICROSECOND


def _clip(x: Any, lo: Any, hi: Any) -> Any:
    low = x if x >= lo else lo
    return low if low <= hi else hi


STRICT: dict[str, Callable[..., Any]] = {
    "to_float": float,
    "add.int": lambda x, y: _int(x + y),
    "sub.int": lambda x, y: _int(x - y),
    "mul.int": lambda x, y: _int(x * y),
    "mod.int": _mod,
    "neg.int": lambda x: _int(-x),
    "abs.int": lambda x: _int(abs(x)),
    "add.float": lambda x, y: _float(x + y),
    "sub.float": lambda x, y: _float(x - y),
    "mul.float": lambda x, y: _float(x * y),
    "mod.float": _mod,
    "neg.float": lambda x: -x,
    "abs.float": abs,
    "div": _div,
    "eq": lambda x, y: x == y,
    "ne": lambda x, y: x != y,
    "lt": lambda x, y: x < y,
    "le": lambda x, y: x <= y,
    "gt": lambda x, y: x > y,
    "ge": lambda x, y: x >= y,
    "not": lambda x: not x,
    "log": lambda x: math.log(x) if x > 0 else None,
    "log1p": lambda x: math.log1p(x) if x > -1 else None,
    "exp": _exp,
    "sqrt": lambda x: math.sqrt(x) if x >= 0 else None,
    "min": lambda x, y: x if x <= y else y,
    "max": lambda x, y: x if x >= y else y,
    "clip": _clip,
    "hour": lambda ts: _micros(ts) // _US_PER_HOUR % 24,
    "day_of_week": lambda ts: (_micros(ts) // _US_PER_DAY + 3) % 7,  # 1970-01-01 was a Thursday (3)
    "days_since": lambda ts, now: _float(float(_micros(now) - _micros(ts)) / _US_PER_DAY),
    "lower": lambda s: s.translate(_ASCII_LOWER),  # ASCII only: Unicode case rules differ between engines
    "len": len,
}

# Strict functions that also take the node's literal data.
WITH_DATA: dict[str, Callable[[tuple[Any, ...]], Callable[..., Any]]] = {
    "in": lambda items: frozenset(items).__contains__,
    "bucketize": lambda bounds: lambda x: bisect.bisect_right(bounds, x),
}


def _kleene_and(a: Scalar, b: Scalar) -> Scalar:
    def run(values: Values) -> bool | None:
        x = a(values)
        if x is False:
            return False
        y = b(values)
        if y is False:
            return False
        return None if x is None or y is None else True

    return run


def _kleene_or(a: Scalar, b: Scalar) -> Scalar:
    def run(values: Values) -> bool | None:
        x = a(values)
        if x is True:
            return True
        y = b(values)
        if y is True:
            return True
        return None if x is None or y is None else False

    return run


def _if(cond: Scalar, then: Scalar, otherwise: Scalar) -> Scalar:
    def run(values: Values) -> Any:
        return then(values) if cond(values) is True else otherwise(values)  # a null condition takes else

    return run


def _coalesce(*args: Scalar) -> Scalar:
    def run(values: Values) -> Any:
        for arg in args:
            value = arg(values)
            if value is not None:
                return value
        return None

    return run


SPECIAL: dict[str, Callable[..., Scalar]] = {"and": _kleene_and, "or": _kleene_or, "if": _if, "coalesce": _coalesce}


def compile_scalar(typed: Typed) -> Scalar:
    """A function of a dict of values (missing key = null) that evaluates the typed expression."""
    if isinstance(typed, Const):
        value = typed.value
        return lambda _: value
    if isinstance(typed, Column):
        return _column(typed.name, typed.type)
    assert isinstance(typed, Apply)
    args = [compile_scalar(arg) for arg in typed.args]
    if typed.op in SPECIAL:
        return SPECIAL[typed.op](*args)
    fn = WITH_DATA[typed.op](typed.data) if typed.op in WITH_DATA else STRICT[typed.op]
    return _strict(fn, args)


def _column(name: str, kind: FeatureType | None) -> Scalar:
    if kind != FeatureType.FLOAT:
        return lambda values: values.get(name)

    def read_float(values: Values) -> float | None:
        value = values.get(name)
        return None if value is None else _float(float(value))  # NaN and inf inputs are null

    return read_float


def _strict(fn: Callable[..., Any], args: list[Scalar]) -> Scalar:
    """Null in, null out: the function itself only sees non-null values."""
    if len(args) == 1:
        (a,) = args

        def run1(values: Values) -> Any:
            x = a(values)
            return None if x is None else fn(x)

        return run1
    if len(args) == 2:
        a, b = args

        def run2(values: Values) -> Any:
            x = a(values)
            if x is None:
                return None
            y = b(values)
            return None if y is None else fn(x, y)

        return run2

    def run(values: Values) -> Any:
        xs = [arg(values) for arg in args]
        return None if any(x is None for x in xs) else fn(*xs)

    return run
