"""The type checker: syntax tree + the types of known refs -> the typed form, or a precise error."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import cast

from ma_ray.palette.dsl.errors import DslTypeError, DslUnknownReferenceError
from ma_ray.palette.dsl.functions import FUNCTIONS
from ma_ray.palette.dsl.ir import FLOAT, NUMERIC, Apply, Column, Const, Part, Typed, coerce, require, unify
from ma_ray.palette.dsl.nodes import Binary, Call, ListLiteral, Literal, Node, Ref, Unary
from ma_ray.palette.types import FeatureType

BOOL, TIMESTAMP = FeatureType.BOOL, FeatureType.TIMESTAMP
_ARITHMETIC = {"+": "add", "-": "sub", "*": "mul", "%": "mod"}
_COMPARISONS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_ORDERED = (*NUMERIC, TIMESTAMP)


def check(tree: Node, source: str, types: Mapping[str, FeatureType]) -> Typed:
    """Type-check a parsed expression; raises ``DslTypeError`` or ``DslUnknownReferenceError``."""
    typed = _Checker(source, types).check(tree)
    if typed.type is None:
        raise DslTypeError(f"cannot infer the type of null in {source.strip()!r}")
    return typed


class _Checker:
    def __init__(self, source: str, types: Mapping[str, FeatureType]) -> None:
        self.source = source
        self.types = types

    def text(self, node: Node) -> str:
        return self.source[node.start : node.end]

    def part(self, node: Node) -> Part:
        return Part(self.check(node), self.text(node))

    def check(self, node: Node) -> Typed:
        if isinstance(node, Literal):
            return Const(node.type, node.value)
        if isinstance(node, Ref):
            return self._ref(node)
        if isinstance(node, Unary):
            return self._unary(node)
        if isinstance(node, Binary):
            return self._in(node) if node.op == "in" else self._binary(node)
        if isinstance(node, Call):
            return self._call(node)
        assert isinstance(node, ListLiteral)
        raise DslTypeError(f"the list {self.text(node)!r} is only allowed after 'in' or as bucketize's boundaries")

    def _ref(self, node: Ref) -> Typed:
        kind = self.types.get(node.name)
        if kind is None:
            suggestions = difflib.get_close_matches(node.name, list(self.types), n=5, cutoff=0.6)
            hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
            raise DslUnknownReferenceError(f"unknown reference {node.name}{hint}", suggestions)
        return Column(FeatureType(kind), node.name)

    def _unary(self, node: Unary) -> Typed:
        part, whole = self.part(node.operand), self.text(node)
        if node.op == "not":
            require(part, (BOOL,), whole, "'not'")
            return Apply(BOOL, "not", (coerce(part.typed, BOOL),))
        require(part, NUMERIC, whole, "unary '-'")
        kind, args = unify([part], whole)
        return Apply(kind, f"neg.{kind}", tuple(args))

    def _binary(self, node: Binary) -> Typed:
        left, right, whole = self.part(node.left), self.part(node.right), self.text(node)
        op = node.op
        if op in ("and", "or"):
            for part in (left, right):
                require(part, (BOOL,), whole, f"'{op}'")
            return Apply(BOOL, op, (coerce(left.typed, BOOL), coerce(right.typed, BOOL)))
        if op in ("==", "!="):
            _, args = unify([left, right], whole)
            return Apply(BOOL, _COMPARISONS[op], tuple(args))
        allowed = _ORDERED if op in _COMPARISONS else NUMERIC
        for part in (left, right):
            require(part, allowed, whole, f"'{op}'")
        if op in _COMPARISONS:
            _, args = unify([left, right], whole)
            return Apply(BOOL, _COMPARISONS[op], tuple(args))
        if op == "/":  # always float division
            return Apply(FLOAT, "div", (coerce(left.typed, FLOAT), coerce(right.typed, FLOAT)))
        kind, args = unify([left, right], whole)
        return Apply(kind, f"{_ARITHMETIC[op]}.{kind}", tuple(args))

    def _in(self, node: Binary) -> Typed:
        assert isinstance(node.right, ListLiteral)  # the parser only builds `in` with a list
        left, whole = self.part(node.left), self.text(node)
        items = [Part(Const(item.type, item.value), self.text(item)) for item in node.right.items]
        kind, args = unify([left, *items], whole)
        # Adding 0.0 turns -0.0 into 0.0, so hashing the set cannot tell equal zeros apart.
        constants = cast("list[Const]", args[1:])  # coerce() turns a constant into a constant
        values = tuple(v.value + 0.0 if kind == FLOAT else v.value for v in constants)
        return Apply(BOOL, "in", (args[0],), values)

    def _call(self, node: Call) -> Typed:
        spec, whole = FUNCTIONS[node.name], self.text(node)
        count = len(node.args)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            wanted = f"at least {spec.min_args}" if spec.max_args is None else str(spec.min_args)
            raise DslTypeError(f"in {whole!r}: {node.name}() takes {wanted} arguments but got {count}")
        parts: list[Part] = []
        listed: ListLiteral | None = None
        for index, arg in enumerate(node.args):
            if index == spec.list_arg:
                if not isinstance(arg, ListLiteral):
                    raise DslTypeError(
                        f"in {whole!r}: {node.name}() needs a [list] of literals, not {self.text(arg)!r}"
                    )
                listed = arg
            else:
                parts.append(self.part(arg))
        return spec.rule(whole, parts, listed)
