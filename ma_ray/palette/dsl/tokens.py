"""The tokenizer: source text -> a list of tokens, each with its offset, ending in an ``eof`` token."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ma_ray.palette.dsl.errors import DslSyntaxError

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})
# Longest first, so "<=" wins over "<".
OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]", ",")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_SPACE = re.compile(r"\s+")
_REF_PARTS = {"palette": 4, "basis": 1}  # catalog, group, feature, join key
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "int", "float", "string", "ref", "name", "keyword", "op" or "eof"
    text: str  # the source text of the token
    value: Any  # the parsed value of a literal, the name of a ref/name/keyword/op
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    def describe(self) -> str:
        return "end of input" if self.kind == "eof" else repr(self.text)


def position(source: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of an offset."""
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


def syntax_error(source: str, offset: int, message: str) -> DslSyntaxError:
    return DslSyntaxError(message, *position(source, offset))


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while True:
        space = _SPACE.match(source, pos)
        if space:
            pos = space.end()
        if pos >= len(source):
            tokens.append(Token("eof", "", None, pos))
            return tokens
        token = _next_token(source, pos)
        tokens.append(token)
        pos = token.end


def _next_token(source: str, pos: int) -> Token:
    char = source[pos]
    if "0" <= char <= "9":  # ASCII only: str.isdigit accepts other scripts' digits
        return _number(source, pos)
    if char in "\"'":
        return _string(source, pos)
    if char == "@":
        return _ref(source, pos)
    name = _NAME.match(source, pos)
    if name:
        text = name.group()
        return Token("keyword" if text in KEYWORDS else "name", text, text, pos)
    for op in OPERATORS:
        if source.startswith(op, pos):
            return Token("op", op, op, pos)
    raise syntax_error(source, pos, f"unexpected character {char!r}")


def _number(source: str, pos: int) -> Token:
    match = _NUMBER.match(source, pos)
    assert match is not None  # the caller saw a digit
    text = match.group()
    if match.group(1) or match.group(2):
        value = float(text)
        if value == float("inf"):
            raise syntax_error(source, pos, f"float literal {text} is out of range")
        return Token("float", text, value, pos)
    value = int(text)
    if value > INT64_MAX:
        raise syntax_error(source, pos, f"integer literal {text} does not fit in 64 bits")
    return Token("int", text, value, pos)


def _string(source: str, pos: int) -> Token:
    quote = source[pos]
    chars: list[str] = []
    i = pos + 1
    while i < len(source) and source[i] != quote:
        if source[i] == "\\":
            char, i = _escape(source, i)
            chars.append(char)
        else:
            chars.append(source[i])
            i += 1
    if i >= len(source):
        raise syntax_error(source, pos, f"unterminated string: expected a closing {quote}")
    return Token("string", source[pos : i + 1], "".join(chars), pos)


def _escape(source: str, i: int) -> tuple[str, int]:
    """The character an escape at ``source[i] == '\\'`` stands for, and the offset after it."""
    code = source[i + 1 : i + 2]
    if code in _ESCAPES:
        return _ESCAPES[code], i + 2
    digits = source[i + 2 : i + 6]
    if code == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", digits):
        value = int(digits, 16)
        if not 0xD800 <= value <= 0xDFFF:  # a lone surrogate cannot be encoded as UTF-8
            return chr(value), i + 6
    raise syntax_error(source, i, f"invalid escape {source[i : i + 2]!r}")


def _ref(source: str, pos: int) -> Token:
    parts: list[str] = []
    i = pos
    while i == pos or (i < len(source) and source[i] == ":"):
        name = _NAME.match(source, i + 1)
        if not name:
            raise syntax_error(source, i + 1, "expected an identifier in a reference")
        parts.append(name.group())
        i = name.end()
    kind = parts[0]
    if kind not in _REF_PARTS or len(parts) - 1 != _REF_PARTS[kind]:
        raise syntax_error(
            source, pos, "expected a reference @palette:<catalog>:<group>:<feature>:<join_key> or @basis:<field>"
        )
    text = source[pos:i]
    return Token("ref", text, text, pos)
