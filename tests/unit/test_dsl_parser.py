"""The DSL parser: precedence, literals, refs, positioned errors, refused Python escapes and limits."""

from __future__ import annotations

import pytest

from ma_ray.palette.dsl import DslLimitError, DslSyntaxError, parse
from ma_ray.palette.dsl.nodes import Binary, Call, ListLiteral, Literal, Node, Ref, Unary
from ma_ray.palette.types import FeatureType as T


def shape(node: Node) -> object:
    """A compact form of a tree, to compare structure."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Ref):
        return node.name
    if isinstance(node, Unary):
        return (node.op, shape(node.operand))
    if isinstance(node, Binary):
        return (node.op, shape(node.left), shape(node.right))
    if isinstance(node, ListLiteral):
        return [shape(item) for item in node.items]
    assert isinstance(node, Call)
    return (node.name, *map(shape, node.args))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", ("+", 1, ("*", 2, 3))),
        ("(1 + 2) * 3", ("*", ("+", 1, 2), 3)),
        ("1 - 2 - 3", ("-", ("-", 1, 2), 3)),
        ("8 / 4 % 3", ("%", ("/", 8, 4), 3)),
        ("-2 * 3", ("*", ("-", 2), 3)),
        ("--2", ("-", ("-", 2))),
        ("1 + 2 < 4", ("<", ("+", 1, 2), 4)),
        ("not 1 == 2", ("not", ("==", 1, 2))),
        ("true or false and false", ("or", True, ("and", False, False))),
        ("not true and false", ("and", ("not", True), False)),
        ("1 in [1, -2.5]", ("in", 1, [1, -2.5])),
        ("1 + 1 in [2]", ("in", ("+", 1, 1), [2])),
    ],
)
def test_precedence(source: str, expected: object) -> None:
    assert shape(parse(source)) == expected


@pytest.mark.parametrize(
    ("source", "value", "kind"),
    [
        ("42", 42, T.INT),
        ("1.5", 1.5, T.FLOAT),
        ("1e-3", 1e-3, T.FLOAT),
        ("2.5E+2", 250.0, T.FLOAT),
        ('"hi"', "hi", T.STRING),
        ("'hi'", "hi", T.STRING),
        (r'"a\"b\n\t\\"', 'a"b\n\t\\', T.STRING),
        (r"'it\'s'", "it's", T.STRING),
        (r'"\u00e9"', "é", T.STRING),
        ("true", True, T.BOOL),
        ("false", False, T.BOOL),
        ("null", None, None),
    ],
)
def test_literals(source: str, value: object, kind: T | None) -> None:
    node = parse(source)
    assert isinstance(node, Literal)
    assert node.value == value
    assert node.type == kind


def test_refs_and_spans() -> None:
    source = "@palette:rideshare:driver_stats:trip_count_7d:driver_id + @basis:request_ts"
    node = parse(source)
    assert isinstance(node, Binary)
    assert shape(node) == ("+", "@palette:rideshare:driver_stats:trip_count_7d:driver_id", "@basis:request_ts")
    assert source[node.right.start : node.right.end] == "@basis:request_ts"


def test_calls_and_lists() -> None:
    assert shape(parse("bucketize(@basis:x, [1, 2, 3])")) == ("bucketize", "@basis:x", [1, 2, 3])
    assert shape(parse("if(true, 1, null)")) == ("if", True, 1, None)


@pytest.mark.parametrize(
    ("source", "line", "column", "fragment"),
    [
        ("min(1, 2", 1, 9, "expected ')' but found end of input"),
        ("(1 , 2)", 1, 4, "expected ')' but found ','"),
        ("1 +\n  * 2", 2, 3, "expected an expression but found '*'"),
        ("1 2", 1, 3, "expected an operator or end of input but found '2'"),
        ("@palette:a:b", 1, 1, "expected a reference"),
        ("@basis:", 1, 8, "expected an identifier"),
        ("@other:x", 1, 1, "expected a reference"),
        ('"abc', 1, 1, "unterminated string"),
        (r'"\q"', 1, 2, "invalid escape"),
        (r'"\ud800"', 1, 2, "invalid escape"),
        ("1 < 2 < 3", 1, 7, "cannot be chained"),
        ("1 in 2", 1, 6, "expected '['"),
        ("[1, @basis:x]", 1, 5, "expected a literal"),
        ("[-'a']", 1, 3, "expected a number"),
        ("99999999999999999999", 1, 1, "does not fit"),
        ("1e999", 1, 1, "out of range"),
        ("lg(1)", 1, 1, "did you mean 'log'"),
        ("#", 1, 1, "unexpected character '#'"),
    ],
)
def test_syntax_errors_have_positions(source: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(DslSyntaxError) as caught:
        parse(source)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(f"line {line}, column {column}: ")


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('true')",
        "@basis:x.__class__",
        "(1).__class__",
        "lambda: 1",
        "open('/etc/passwd')",
        "eval('1')",
        "exec('1')",
        "globals()",
        "x",
        "`1`",
        "1; 2",
        "[x for x in y]",
        "{'a': 1}",
        "1 if true else 2",
        "a = 1",
        "1 ** 2",
    ],
)
def test_python_escapes_are_refused(source: str) -> None:
    with pytest.raises(DslSyntaxError):
        parse(source)


@pytest.mark.parametrize(
    "source",
    [
        "(" * 10_000 + "1" + ")" * 10_000,
        "-" * 5_000 + "1",
        "not " * 2_000 + "true",
        "abs(" * 3_000 + "1" + ")" * 3_000,
        "min(1, " * 3_000 + "1" + ")" * 3_000,
        " + ".join(["1"] * 2_000),  # a left-deep chain: no recursion in parsing, refused before checking
        "1" * 10_001,
    ],
)
def test_limits(source: str) -> None:
    with pytest.raises(DslLimitError):
        parse(source)


def test_nesting_within_limits_parses() -> None:
    assert shape(parse("(" * 60 + "1" + ")" * 60)) == 1
