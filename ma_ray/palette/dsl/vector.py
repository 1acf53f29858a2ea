"""The vector compiler: typed form -> a function over pyarrow arrays, for batch and training.

Each op key here mirrors the one in ``scalar.py``; where Arrow's kernel could differ from the Python
definition (overflow, modulo, inf/NaN, signed zeros), the code below makes the results identical.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ma_ray.palette.dsl import scalar
from ma_ray.palette.dsl.ir import Apply, Column, Const, Typed

Value: TypeAlias = pa.Array | pa.Scalar
Columns = Mapping[str, pa.Array]
Vector = Callable[[Columns, int], Value]

_FLOAT, _INT, _BOOL = pa.float64(), pa.int64(), pa.bool_()
_US_PER_DAY = 86_400_000_000.0


def finite(values: pa.Array) -> pa.Array:
    """inf and NaN become null, as the scalar side's ``_float`` does; a no-op pass when all are finite."""
    ok = pc.is_finite(values)
    if pc.all(ok).as_py() is not False:
        return values
    return pc.if_else(ok, values, pa.scalar(None, _FLOAT))


def _float_op(kernel: Callable[..., Value]) -> Callable[..., Value]:
    return lambda *args: finite(kernel(*args))


def _to_numpy(value: Value, n: int, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """Values (nulls filled with 1, a safe divisor) and the validity mask, broadcast to n rows."""
    if isinstance(value, pa.Scalar):
        item = value.as_py()
        return np.full(n, 1 if item is None else item, dtype=dtype), np.full(n, item is not None)
    return value.fill_null(1).to_numpy(zero_copy_only=False), value.is_valid().to_numpy(zero_copy_only=False)


def _elementwise(op: str, args: tuple[Value, ...], n: int, kind: pa.DataType) -> pa.Array:
    """Apply the scalar definition row by row: the exact fallback when an int kernel overflows."""
    fn = scalar.STRICT[op]
    columns = [[arg.as_py()] * n if isinstance(arg, pa.Scalar) else arg.to_pylist() for arg in args]
    return pa.array([None if None in row else fn(*row) for row in zip(*columns, strict=True)], kind)


def _checked_int(op: str, kernel: Callable[..., Value]) -> Callable[..., Value]:
    """Int arithmetic; a row that overflows int64 is null, as on the scalar side."""

    def run(n: int, *args: Value) -> Value:
        try:
            return kernel(*args)
        except pa.ArrowInvalid:  # only overflow: null slots are skipped by the checked kernels
            return _elementwise(op, args, n, _INT)

    return run


def _mod(n: int, x: Value, y: Value) -> pa.Array:
    """Floored modulo as in Python (numpy.remainder computes the same); a zero divisor gives null."""
    dtype = np.float64 if x.type == _FLOAT else np.int64
    xs, x_ok = _to_numpy(x, n, dtype)
    ys, y_ok = _to_numpy(y, n, dtype)
    valid = x_ok & y_ok & (ys != 0)
    with np.errstate(all="ignore"):
        result = np.remainder(xs, np.where(valid, ys, 1))
    return pa.array(result, type=x.type, mask=~valid)


def _bucketize(bounds: tuple[Any, ...]) -> Callable[..., Value]:
    def run(n: int, x: Value) -> pa.Array:
        xs, ok = _to_numpy(x, n, np.float64 if x.type == _FLOAT else np.int64)
        buckets = np.searchsorted(np.asarray(bounds, dtype=xs.dtype), xs, side="right")
        return pa.array(buckets.astype(np.int64), type=_INT, mask=~ok)

    return run


def _in(items: tuple[Any, ...]) -> Callable[..., Value]:
    def run(_: int, x: Value) -> Value:
        if x.type == _FLOAT:
            x = pc.add(x, 0.0)  # -0.0 -> 0.0: is_in hashes the two zeros apart, Python's == does not
        found = pc.is_in(x, value_set=pa.array(items, type=x.type))
        return pc.if_else(pc.is_valid(x), found, pa.scalar(None, _BOOL))  # is_in answers false for null

    return run


def _days_since(ts: Value, now: Value) -> Value:
    micros = pc.cast(pc.subtract(now, ts), _INT)
    return finite(pc.divide(pc.cast(micros, _FLOAT, safe=False), _US_PER_DAY))


def _clip(x: Value, lo: Value, hi: Value) -> Value:
    return pc.min_element_wise(pc.max_element_wise(x, lo, skip_nulls=False), hi, skip_nulls=False)


def _plain(kernel: Callable[..., Value]) -> Callable[..., Value]:
    """A kernel that needs no row count."""
    return lambda _, *args: kernel(*args)


STRICT: dict[str, Callable[..., Value]] = {
    "to_float": _plain(lambda x: pc.cast(x, _FLOAT, safe=False)),
    "add.int": _checked_int("add.int", pc.add_checked),
    "sub.int": _checked_int("sub.int", pc.subtract_checked),
    "mul.int": _checked_int("mul.int", pc.multiply_checked),
    "mod.int": _mod,
    "neg.int": _checked_int("neg.int", pc.negate_checked),
    "abs.int": _checked_int("abs.int", pc.abs_checked),
    "add.float": _plain(_float_op(pc.add)),
    "sub.float": _plain(_float_op(pc.subtract)),
    "mul.float": _plain(_float_op(pc.multiply)),
    "mod.float": _mod,
    "neg.float": _plain(pc.negate),
    "abs.float": _plain(pc.abs),
    "div": _plain(_float_op(pc.divide)),  # x/0 is inf or NaN, hence null
    "eq": _plain(pc.equal),
    "ne": _plain(pc.not_equal),
    "lt": _plain(pc.less),
    "le": _plain(pc.less_equal),
    "gt": _plain(pc.greater),
    "ge": _plain(pc.greater_equal),
    "not": _plain(pc.invert),
    "log": _plain(_float_op(pc.ln)),  # log(0) = -inf, log(<0) = NaN: both null
    "log1p": _plain(_float_op(pc.log1p)),
    "exp": _plain(_float_op(pc.exp)),
    "sqrt": _plain(_float_op(pc.sqrt)),
    # Equal inputs differ at most in the sign of a zero, which no operation here can observe.
    "min": _plain(lambda x, y: pc.min_element_wise(x, y, skip_nulls=False)),
    "max": _plain(lambda x, y: pc.max_element_wise(x, y, skip_nulls=False)),
    "clip": _plain(_clip),
    "hour": _plain(pc.hour),
    "day_of_week": _plain(pc.day_of_week),  # Monday = 0 by default
    "days_since": _plain(_days_since),
    "lower": _plain(pc.ascii_lower),
    "len": _plain(lambda s: pc.cast(pc.utf8_length(s), _INT)),
}

WITH_DATA: dict[str, Callable[[tuple[Any, ...]], Callable[..., Value]]] = {"in": _in, "bucketize": _bucketize}

SPECIAL: dict[str, Callable[..., Value]] = {
    "and": pc.and_kleene,
    "or": pc.or_kleene,
    "if": lambda cond, then, otherwise: pc.if_else(pc.fill_null(cond, False), then, otherwise),
    "coalesce": pc.coalesce,
}


def compile_vector(typed: Typed) -> Vector:
    """A function of (columns by ref name, row count) evaluating the expression; may return a Scalar."""
    if isinstance(typed, Const):
        constant = pa.scalar(typed.value, type=typed.type.arrow if typed.type else None)
        return lambda columns, n: constant
    if isinstance(typed, Column):
        name = typed.name
        return lambda columns, n: columns[name]
    assert isinstance(typed, Apply)
    args = [compile_vector(arg) for arg in typed.args]
    if typed.op in SPECIAL:
        special = SPECIAL[typed.op]
        return lambda columns, n: special(*(arg(columns, n) for arg in args))
    fn = WITH_DATA[typed.op](typed.data) if typed.op in WITH_DATA else STRICT[typed.op]
    return lambda columns, n: fn(n, *(arg(columns, n) for arg in args))
