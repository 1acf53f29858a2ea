"""``compile_expression``: parse, type-check, fold constants, then compile once for each mode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import pyarrow as pa

from ma_ray.palette.dsl.errors import DslError, DslTypeError
from ma_ray.palette.dsl.ir import Apply, Const, Typed
from ma_ray.palette.dsl.nodes import Node, Ref
from ma_ray.palette.dsl.parser import parse
from ma_ray.palette.dsl.scalar import compile_scalar
from ma_ray.palette.dsl.typecheck import check
from ma_ray.palette.dsl.vector import compile_vector, finite
from ma_ray.palette.types import FeatureType

ColumnsLike: TypeAlias = Mapping[str, pa.Array | pa.ChunkedArray] | pa.Table | pa.RecordBatch


class CompiledExpression:
    """One expression compiled twice: ``scalar`` for a row of values, ``vectorized`` for Arrow columns.

    Both give the same result on every input, nulls included.
    """

    def __init__(self, source: str, typed: Typed, references: frozenset[str], types: Mapping[str, FeatureType]):
        assert typed.type is not None  # the checker refuses an untyped result
        self.source = source
        self.output_type: FeatureType = typed.type
        self.references = references
        self._types = {name: FeatureType(types[name]) for name in references}
        self._scalar = compile_scalar(typed)
        self._vector = compile_vector(typed)

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r} -> {self.output_type})"

    def scalar(self, values: Mapping[str, Any]) -> Any:
        """Evaluate one row: values by ref name, ``None`` or a missing key is null; returns None for null.

        Timestamps are timezone-aware ``datetime``s; NaN or inf given for a float ref counts as null.
        """
        return self._scalar(values)

    def vectorized(self, columns: ColumnsLike) -> pa.Array:
        """Evaluate columns named by ref (a mapping, Table or RecordBatch) into an array of ``output_type.arrow``.

        Every referenced column must be present; its values are cast to the ref's type.
        """
        n = _row_count(columns, self.references)
        arrays = {name: self._column(columns, name, n) for name in self.references}
        result = self._vector(arrays, n)
        if isinstance(result, pa.Scalar):
            return pa.nulls(n, result.type) if not result.is_valid else pa.repeat(result, n)
        return result

    def _column(self, columns: ColumnsLike, name: str, n: int) -> pa.Array:
        try:
            column = columns[name] if isinstance(columns, Mapping) else columns.column(name)
        except KeyError:
            raise DslError(f"missing column {name!r} for {self.source!r}") from None
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if len(column) != n:
            raise DslError(f"column {name!r} has {len(column)} rows, expected {n}")
        kind = self._types[name]
        if column.type != kind.arrow:
            try:
                column = column.cast(kind.arrow)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise DslTypeError(f"column {name!r} of type {column.type} is not {kind}: {error}") from None
        return finite(column) if kind == FeatureType.FLOAT else column


def _row_count(columns: ColumnsLike, references: frozenset[str]) -> int:
    if isinstance(columns, pa.Table | pa.RecordBatch):
        rows: int = columns.num_rows
        return rows
    present = [name for name in sorted(references) if name in columns] or list(columns)
    return len(columns[present[0]]) if present else 0


def compile_expression(source: str, types: Mapping[str, FeatureType]) -> CompiledExpression:
    """Parse and type-check ``source`` against the types of known refs; raises a ``DslError`` subclass."""
    tree = parse(source)
    typed = _fold(check(tree, source, types))
    return CompiledExpression(source, typed, _references(tree), types)


def _references(tree: Node) -> frozenset[str]:
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Ref):
            found.add(node.name)
        stack.extend(node.children())
    return frozenset(found)


def _fold(typed: Typed) -> Typed:
    """Evaluate constant parts once, with the scalar definition, so both modes share their value."""
    if not isinstance(typed, Apply):
        return typed
    args = tuple(_fold(arg) for arg in typed.args)
    if typed.op == "if" and isinstance(args[0], Const):
        return args[1] if args[0].value is True else args[2]
    folded = Apply(typed.type, typed.op, args, typed.data)
    if all(isinstance(arg, Const) for arg in args):
        return Const(typed.type, compile_scalar(folded)({}))
    return folded
