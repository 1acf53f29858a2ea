"""Fuzzing the front end: arbitrary text may be refused, but only ever with a DslError."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from ma_ray.palette.dsl import DslError, compile_expression, parse
from ma_ray.palette.types import FeatureType as T

TYPES = {"@basis:x": T.INT, "@basis:y": T.FLOAT, "@basis:s": T.STRING, "@basis:b": T.BOOL, "@basis:t": T.TIMESTAMP}
PIECES = [
    "@basis:x", "@basis:y", "@basis:s", "@basis:b", "@basis:t", "@palette:a:b:c:d", "@basis", "@", ":",
    "(", ")", "[", "]", ",", "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or", "not",
    "in", "if", "nfill", "coalesce", "log", "exp", "sqrt", "abs", "min", "max", "clip", "bucketize", "hour",
    "day_of_week", "days_since", "lower", "len", "true", "false", "null", "0", "1", "-1", "2.5", "1e308",
    "1e999", '"a"', "'b'", '"\\u00e9"', '"\\', "__import__", ".", "lambda", " ", "\n",
]  # fmt: skip


def _compile(source: str) -> None:
    with contextlib.suppress(DslError):
        compile_expression(source, TYPES)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_random_text_only_raises_dsl_errors(source: str) -> None:
    with contextlib.suppress(DslError):
        parse(source)
    _compile(source)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=25).map(" ".join))
def test_token_soup_only_raises_dsl_errors(source: str) -> None:
    _compile(source)
