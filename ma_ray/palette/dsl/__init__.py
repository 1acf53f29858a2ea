"""The feature DSL: one definition of a feature transformation, compiled twice.

``compile_expression(source, types)`` type-checks an expression over feature refs
(``@palette:<catalog>:<group>:<feature>:<join_key>``) and request fields (``@basis:<field>``) and returns a
``CompiledExpression`` with a ``scalar`` function (a dict of values, for online serving) and a ``vectorized``
function (pyarrow columns, for batch and training). The two agree on every input: that is the
training-serving consistency guarantee, enforced by a property test.

Language: literals (``1``, ``1.5``, ``1e-3``, ``"s"``/``'s'`` with backslash escapes, ``true``, ``false``,
``null``); ``or``, ``and``, ``not``; ``== != < <= > >=`` (not chained); ``x in [lit, ...]``; ``+ - * / %``;
unary ``-``; ``if(cond, then, else)`` and the functions nfill, coalesce, log, log1p, exp, sqrt, abs, min, max,
clip, bucketize, hour, day_of_week, days_since, lower, len.

Types: int op int is int; any float makes float; ``/`` is always float; comparisons give bool; strings
support only ``==``, ``!=``, ``in``, lower, len, coalesce/nfill and if; timestamps support comparisons,
hour, day_of_week (Monday = 0), days_since (float days) and coalesce/nfill/if.

Null semantics (identical in both modes):

- Operators and functions give null when any input is null, except ``nfill``/``coalesce`` (first non-null),
  ``if`` (a null condition takes the else branch) and ``and``/``or``, which use Kleene three-valued logic
  (``null and false`` is false, ``null or true`` is true). ``null in [...]`` is null.
- Results that cannot be represented are null, never an error, inf or NaN: division or ``%`` by zero,
  ``log`` of x <= 0, ``log1p`` of x <= -1, ``sqrt`` of x < 0, float overflow to +-inf, int results outside int64.
- Float inputs that are NaN or +-inf count as null; a missing key in scalar mode is null.
- ``%`` is floored modulo (the sign of the divisor), as in Python.
- ``lower`` lowercases ASCII letters only, ``len`` counts code points.
- ``bucketize(x, [b1, ..., bn])`` is the number of boundaries <= x (boundaries strictly increasing).
"""

from ma_ray.palette.dsl.compiler import CompiledExpression, compile_expression
from ma_ray.palette.dsl.errors import DslError, DslLimitError, DslSyntaxError, DslTypeError, DslUnknownReferenceError
from ma_ray.palette.dsl.nodes import Node
from ma_ray.palette.dsl.parser import parse


def check_transforms(transforms: dict[str, str]) -> dict[str, str]:
    """``transforms`` (name -> expression) if every expression parses; else ValueError naming the transform."""
    for name, source in transforms.items():
        try:
            parse(source)
        except DslError as error:
            raise ValueError(f"transform '{name}': {error}") from None
    return transforms


__all__ = [
    "CompiledExpression",
    "DslError",
    "DslLimitError",
    "DslSyntaxError",
    "DslTypeError",
    "DslUnknownReferenceError",
    "Node",
    "check_transforms",
    "compile_expression",
    "parse",
]
