"""The syntax tree produced by the parser. Every node records its source span ``[start, end)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ma_ray.palette.types import FeatureType


@dataclass(frozen=True, slots=True)
class Node:
    start: int
    end: int

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """A constant; ``type`` is None for ``null``, whose type comes from where it is used."""

    value: Any
    type: FeatureType | None


@dataclass(frozen=True, slots=True)
class Ref(Node):
    """``@palette:catalog:group:feature:join_key`` or ``@basis:field``, kept as the full string."""

    name: str


@dataclass(frozen=True, slots=True)
class ListLiteral(Node):
    """``[lit, lit, ...]``: only valid after ``in`` and as bucketize's boundaries."""

    items: tuple[Literal, ...]

    def children(self) -> tuple[Node, ...]:
        return self.items


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-" or "not"
    operand: Node

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # "or", "and", "in", a comparison or an arithmetic operator
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.args
