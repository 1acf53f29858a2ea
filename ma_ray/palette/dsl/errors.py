"""The DSL's exceptions: every problem with an expression is a ``DslError`` (a ``ValueError``)."""

from __future__ import annotations


class DslError(ValueError):
    """Base class of every error the DSL raises for a bad expression or bad input."""


class DslSyntaxError(DslError):
    """The source does not parse; ``line`` and ``column`` (both 1-based) point at the problem."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column


class DslTypeError(DslError):
    """An expression part has a type its operator or function does not accept."""


class DslUnknownReferenceError(DslError):
    """A reference is not among the known names; ``suggestions`` holds the closest known ones."""

    def __init__(self, message: str, suggestions: list[str]) -> None:
        super().__init__(message)
        self.suggestions = suggestions


class DslLimitError(DslError):
    """The source is too long, too deeply nested or has too many nodes."""
