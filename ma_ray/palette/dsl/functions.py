"""The function library: each whitelisted function's arity and type rule, producing a typed ``Apply``.

The implementations live in ``scalar.py`` and ``vector.py`` under the op keys these rules emit.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ma_ray.palette.dsl.errors import DslTypeError
from ma_ray.palette.dsl.ir import FLOAT, INT, NUMERIC, Apply, Part, Typed, coerce, require, unify
from ma_ray.palette.dsl.nodes import ListLiteral
from ma_ray.palette.types import FeatureType

BOOL, STRING, TIMESTAMP = FeatureType.BOOL, FeatureType.STRING, FeatureType.TIMESTAMP
Rule = Callable[[str, Sequence[Part], ListLiteral | None], Typed]


@dataclass(frozen=True)
class FunctionSpec:
    min_args: int
    max_args: int | None  # None: any number
    rule: Rule  # (source of the whole call, the checked arguments, the list argument if any) -> typed node
    list_arg: int | None = None  # the position that must be a [list] literal


def _coalesce(whole: str, parts: Sequence[Part], _: ListLiteral | None) -> Typed:
    kind, args = unify(parts, whole)
    return Apply(kind, "coalesce", tuple(args))


def _if(whole: str, parts: Sequence[Part], _: ListLiteral | None) -> Typed:
    require(parts[0], (BOOL,), whole, "the condition of if")
    kind, args = unify(parts[1:], whole)
    return Apply(kind, "if", (coerce(parts[0].typed, BOOL), *args))


def _float_math(op: str) -> Rule:
    def rule(whole: str, parts: Sequence[Part], _: ListLiteral | None) -> Typed:
        require(parts[0], NUMERIC, whole, f"{op}()")
        return Apply(FLOAT, op, (coerce(parts[0].typed, FLOAT),))

    return rule


def _abs(whole: str, parts: Sequence[Part], _: ListLiteral | None) -> Typed:
    require(parts[0], NUMERIC, whole, "abs()")
    kind, args = unify(parts, whole)
    return Apply(kind, f"abs.{kind}", tuple(args))


def _numeric_same(op: str) -> Rule:
    """min, max, clip: numbers promoted to one type, which is also the result's."""

    def rule(whole: str, parts: Sequence[Part], _: ListLiteral | None) -> Typed:
        for part in parts:
            require(part, NUMERIC, whole, f"{op}()")
        kind, args = unify(parts, whole)
        return Apply(kind, op, tuple(args))

    return rule


def _bucketize(whole: str, parts: Sequence[Part], bounds: ListLiteral | None) -> Typed:
    assert bounds is not None  # the checker passes list_arg
    require(parts[0], NUMERIC, whole, "bucketize()")
    kinds = {item.type for item in bounds.items}
    if not bounds.items or not kinds <= set(NUMERIC):
        raise DslTypeError(f"in {whole!r}: bucketize() needs a non-empty list of numbers as boundaries")
    values = [item.value for item in bounds.items]
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise DslTypeError(f"in {whole!r}: bucketize() boundaries must be strictly increasing")
    kind = FLOAT if FLOAT in kinds or parts[0].typed.type == FLOAT else INT
    data = tuple(float(v) for v in values) if kind == FLOAT else tuple(values)
    return Apply(INT, "bucketize", (coerce(parts[0].typed, kind),), data)


def _typed_fn(op: str, arg_type: FeatureType, result: FeatureType) -> Rule:
    def rule(whole: str, parts: Sequence[Part], _: ListLiteral | None) -> Typed:
        for part in parts:
            require(part, (arg_type,), whole, f"{op}()")
        return Apply(result, op, tuple(coerce(p.typed, arg_type) for p in parts))

    return rule


FUNCTIONS: dict[str, FunctionSpec] = {
    "if": FunctionSpec(3, 3, _if),
    "nfill": FunctionSpec(2, 2, _coalesce),
    "coalesce": FunctionSpec(2, None, _coalesce),
    "log": FunctionSpec(1, 1, _float_math("log")),
    "log1p": FunctionSpec(1, 1, _float_math("log1p")),
    "exp": FunctionSpec(1, 1, _float_math("exp")),
    "sqrt": FunctionSpec(1, 1, _float_math("sqrt")),
    "abs": FunctionSpec(1, 1, _abs),
    "min": FunctionSpec(2, 2, _numeric_same("min")),
    "max": FunctionSpec(2, 2, _numeric_same("max")),
    "clip": FunctionSpec(3, 3, _numeric_same("clip")),
    "bucketize": FunctionSpec(2, 2, _bucketize, list_arg=1),
    "hour": FunctionSpec(1, 1, _typed_fn("hour", TIMESTAMP, INT)),
    "day_of_week": FunctionSpec(1, 1, _typed_fn("day_of_week", TIMESTAMP, INT)),
    "days_since": FunctionSpec(2, 2, _typed_fn("days_since", TIMESTAMP, FLOAT)),
    "lower": FunctionSpec(1, 1, _typed_fn("lower", STRING, STRING)),
    "len": FunctionSpec(1, 1, _typed_fn("len", STRING, INT)),
}
