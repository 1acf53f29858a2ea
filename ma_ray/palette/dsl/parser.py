"""The recursive-descent parser: source text -> syntax tree, with line/column errors and size limits.

Grammar, lowest precedence first (comparisons do not chain)::

    expr    := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum ((== | != | < | <= | > | >=) sum | "in" list)?
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/" | "%") unary)*
    unary   := "-" unary | primary
    primary := literal | ref | "(" expr ")" | name "(" (arg ("," arg)*)? ")" | list
    list    := "[" (item ("," item)*)? "]"      item := "-"? number | string | true | false
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from ma_ray.palette.dsl.errors import DslLimitError
from ma_ray.palette.dsl.functions import FUNCTIONS
from ma_ray.palette.dsl.nodes import Binary, Call, ListLiteral, Literal, Node, Ref, Unary
from ma_ray.palette.dsl.tokens import Token, position, syntax_error, tokenize
from ma_ray.palette.types import FeatureType

MAX_SOURCE_LENGTH = 10_000
MAX_DEPTH = 64
MAX_NODES = 2_000

_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_LITERAL_TYPES = {"int": FeatureType.INT, "float": FeatureType.FLOAT, "string": FeatureType.STRING}
_CONSTANTS = {"true": True, "false": False}


def parse(source: str) -> Node:
    """Parse an expression into its syntax tree (no type check). Raises ``DslSyntaxError`` / ``DslLimitError``."""
    if len(source) > MAX_SOURCE_LENGTH:
        raise DslLimitError(f"expression is {len(source)} characters long; the limit is {MAX_SOURCE_LENGTH}")
    tree = _Parser(source).parse()
    _check_size(source, tree)
    return tree


def _check_size(source: str, tree: Node) -> None:
    """Bound the tree's depth and node count without recursion: later passes recurse over the tree."""
    count = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            line, column = position(source, node.start)
            raise DslLimitError(f"line {line}, column {column}: expression nests deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in node.children())
    if count > MAX_NODES:
        raise DslLimitError(f"expression has {count} nodes; the limit is {MAX_NODES}")


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.index = 0
        self.depth = 0

    # -- token helpers

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def _advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _at(self, *values: str) -> bool:
        return self.token.kind in ("op", "keyword") and self.token.value in values

    def _expect(self, value: str) -> Token:
        if not self._at(value):
            raise self._error(f"expected {value!r} but found {self.token.describe()}")
        return self._advance()

    def _error(self, message: str, token: Token | None = None) -> Exception:
        return syntax_error(self.source, (token or self.token).start, message)

    def _nested(self, parse: Callable[[], Node]) -> Node:
        """Run a recursive production, refusing nesting deeper than the limit before Python's stack runs out."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            line, column = position(self.source, self.token.start)
            raise DslLimitError(f"line {line}, column {column}: expression nests deeper than {MAX_DEPTH} levels")
        try:
            return parse()
        finally:
            self.depth -= 1

    # -- productions

    def parse(self) -> Node:
        tree = self._or()
        if self.token.kind != "eof":
            raise self._error(f"expected an operator or end of input but found {self.token.describe()}")
        return tree

    def _binary_chain(self, operators: tuple[str, ...], operand: Callable[[], Node]) -> Node:
        left = operand()
        while self._at(*operators):
            op = self._advance().value
            right = operand()
            left = Binary(left.start, right.end, op, left, right)
        return left

    def _or(self) -> Node:
        return self._binary_chain(("or",), self._and)

    def _and(self) -> Node:
        return self._binary_chain(("and",), self._not)

    def _not(self) -> Node:
        if not self._at("not"):
            return self._compare()
        start = self._advance().start
        operand = self._nested(self._not)
        return Unary(start, operand.end, "not", operand)

    def _compare(self) -> Node:
        left = self._sum()
        if self._at("in"):
            self._advance()
            if not self._at("["):
                raise self._error(f"expected '[' after 'in' but found {self.token.describe()}")
            right = self._nested(self._list)
        elif self._at(*_COMPARISONS):
            op = self._advance().value
            right = self._sum()
            left = Binary(left.start, right.end, op, left, right)
            if self._at(*_COMPARISONS, "in"):
                raise self._error("comparisons cannot be chained; combine them with 'and'")
            return left
        else:
            return left
        return Binary(left.start, right.end, "in", left, right)

    def _sum(self) -> Node:
        return self._binary_chain(("+", "-"), self._product)

    def _product(self) -> Node:
        return self._binary_chain(("*", "/", "%"), self._unary)

    def _unary(self) -> Node:
        if not self._at("-"):
            return self._primary()
        start = self._advance().start
        operand = self._nested(self._unary)
        return Unary(start, operand.end, "-", operand)

    def _primary(self) -> Node:
        token = self.token
        if token.kind in _LITERAL_TYPES:
            self._advance()
            return Literal(token.start, token.end, token.value, _LITERAL_TYPES[token.kind])
        if token.kind == "keyword" and token.value in (*_CONSTANTS, "null"):
            self._advance()
            kind = None if token.value == "null" else FeatureType.BOOL
            return Literal(token.start, token.end, _CONSTANTS.get(token.value), kind)
        if token.kind == "ref":
            self._advance()
            return Ref(token.start, token.end, token.value)
        if self._at("("):
            return self._nested(self._parenthesized)
        if self._at("["):
            return self._nested(self._list)
        if token.kind == "name":
            return self._nested(self._call)
        raise self._error(f"expected an expression but found {token.describe()}")

    def _parenthesized(self) -> Node:
        self._advance()
        inner = self._or()
        self._expect(")")
        return inner

    def _call(self) -> Node:
        name = self._advance()
        if name.value not in FUNCTIONS:
            close = difflib.get_close_matches(name.value, FUNCTIONS, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else f"; known: {', '.join(FUNCTIONS)}"
            if not self._at("("):
                hint = "; references start with '@' (@palette:... or @basis:...)"
            raise self._error(f"unknown name {name.value!r}{hint}", name)
        self._expect("(")
        args: list[Node] = []
        if not self._at(")"):
            args.append(self._or())
            while self._at(","):
                self._advance()
                args.append(self._or())
        end = self._expect(")").end
        return Call(name.start, end, name.value, tuple(args))

    def _list(self) -> Node:
        start = self._advance().start
        items: list[Literal] = []
        if not self._at("]"):
            items.append(self._list_item())
            while self._at(","):
                self._advance()
                items.append(self._list_item())
        end = self._expect("]").end
        return ListLiteral(start, end, tuple(items))

    def _list_item(self) -> Literal:
        start = self.token.start
        negative = self._at("-")
        if negative:
            self._advance()
        token = self.token
        numeric = token.kind in ("int", "float")
        if negative and not numeric:
            raise self._error(f"expected a number after '-' but found {token.describe()}")
        if numeric or token.kind == "string" or (token.kind == "keyword" and token.value in _CONSTANTS):
            self._advance()
            value = _CONSTANTS.get(token.value, token.value) if token.kind == "keyword" else token.value
            kind = _LITERAL_TYPES.get(token.kind, FeatureType.BOOL)
            return Literal(start, token.end, -value if negative else value, kind)
        raise self._error(f"expected a literal in the list but found {token.describe()}")
