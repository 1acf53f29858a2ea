"""The typed form both compilers consume, and the coercion rules that build it.

Every ``Typed`` node has a concrete type; int -> float promotion is an explicit ``to_float`` node and a
``null`` literal takes the type of where it is used, so the scalar and vector compilers never guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ma_ray.palette.dsl.errors import DslTypeError
from ma_ray.palette.types import FeatureType

FLOAT, INT = FeatureType.FLOAT, FeatureType.INT


@dataclass(frozen=True, slots=True)
class Typed:
    type: FeatureType | None  # None only for an untyped null literal, before coercion


@dataclass(frozen=True, slots=True)
class Const(Typed):
    value: Any  # None is null


@dataclass(frozen=True, slots=True)
class Column(Typed):
    name: str


@dataclass(frozen=True, slots=True)
class Apply(Typed):
    op: str  # a key of the scalar and vector implementation tables
    args: tuple[Typed, ...]
    data: tuple[Any, ...] = ()  # literal operands: the list of `in`, the boundaries of bucketize


@dataclass(frozen=True, slots=True)
class Part:
    """A checked sub-expression and its source text, which type errors quote."""

    typed: Typed
    text: str


def describe(kind: FeatureType | None) -> str:
    return "null" if kind is None else str(kind)


def coerce(typed: Typed, target: FeatureType) -> Typed:
    """Give a null its type and promote int to float; the caller has checked the types are compatible."""
    if typed.type is None:
        return Const(target, None)
    if typed.type == INT and target == FLOAT:
        if isinstance(typed, Const):
            return Const(FLOAT, float(typed.value))
        return Apply(FLOAT, "to_float", (typed,))
    return typed


def common_type(parts: Sequence[Part], whole: str) -> FeatureType:
    """The one type all parts share, int and float meeting at float; nulls fit any type."""
    kinds = [p.typed.type for p in parts if p.typed.type is not None]
    if not kinds:
        raise DslTypeError(f"cannot infer the type of null in {whole!r}")
    if all(k.is_numeric for k in kinds):
        return FLOAT if FLOAT in kinds else INT
    for part in parts:
        if part.typed.type is not None and part.typed.type != kinds[0]:
            first = next(p for p in parts if p.typed.type == kinds[0])
            raise DslTypeError(
                f"in {whole!r}: {first.text!r} is {kinds[0]} but {part.text!r} is {part.typed.type}; they must match"
            )
    return kinds[0]


def unify(parts: Sequence[Part], whole: str) -> tuple[FeatureType, list[Typed]]:
    kind = common_type(parts, whole)
    return kind, [coerce(p.typed, kind) for p in parts]


def require(part: Part, allowed: Sequence[FeatureType], whole: str, what: str) -> None:
    """Refuse a part whose type is not allowed (a null is always allowed)."""
    if part.typed.type is not None and part.typed.type not in allowed:
        wanted = " or ".join(map(str, allowed))
        raise DslTypeError(f"in {whole!r}: {what} needs {wanted}, but {part.text!r} is {part.typed.type}")


NUMERIC = (INT, FLOAT)
