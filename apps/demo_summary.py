"""The demo's outcome for scripts: one JSON entry per stage (outcome, seconds, figures), and a failed stage as one
clear message (the stage, the cause, the command that shows more) instead of a traceback."""

from __future__ import annotations

import json
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SUMMARY_FILE = "demo-summary.json"
TRACEBACK_FILE = "demo-traceback.txt"


class StageFailed(RuntimeError):
    """A stage that cannot go on: ``cause`` in a line, ``more`` the command that shows the rest."""

    def __init__(self, cause: str, more: str) -> None:
        super().__init__(cause)
        self.cause = cause
        self.more = more


@dataclass
class StageEntry:
    number: int
    title: str
    outcome: str = "not run"  # passed | failed | not run
    seconds: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    more: str | None = None


@dataclass
class DemoSummary:
    stages: list[StageEntry]

    @classmethod
    def of(cls, titles: list[str]) -> DemoSummary:
        return cls([StageEntry(number, title) for number, title in enumerate(titles, start=1)])

    @property
    def passed(self) -> bool:
        return all(stage.outcome == "passed" for stage in self.stages)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"passed": self.passed, "stages": [asdict(stage) for stage in self.stages]}
        path.write_text(json.dumps(body, indent=2, default=str) + "\n")


def record_failure(entry: StageEntry, error: BaseException, state_dir: Path, stages: int) -> str:
    """Fill ``entry`` with the failure and return the message for the user. An unexpected error's traceback goes
    to a file in the state dir, which the message names."""
    if isinstance(error, StageFailed):
        entry.error, entry.more = error.cause, error.more
    else:
        first_line = next(iter(str(error).splitlines()), "")
        entry.error = f"{type(error).__name__}: {first_line}"[:500]
        where = state_dir.absolute() / TRACEBACK_FILE
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text("".join(traceback.format_exception(error)))
        entry.more = f"cat {where}"
    entry.outcome = "failed"
    return f"error: stage {entry.number}/{stages} ({entry.title}) failed: {entry.error}\nmore: {entry.more}"
