"""The demo's summary and its one-message failures, without running a stage."""

from __future__ import annotations

import json
from pathlib import Path

from apps.demo_summary import TRACEBACK_FILE, DemoSummary, StageFailed, record_failure


def test_a_stage_failure_with_its_own_hint_names_the_stage_cause_and_command(tmp_path: Path) -> None:
    summary = DemoSummary.of(["generate", "train"])
    message = record_failure(
        summary.stages[1], StageFailed("training job eta-1 FAILED: boom", "ma-ray jobs logs eta-1"), tmp_path, 2
    )
    assert message == "error: stage 2/2 (train) failed: training job eta-1 FAILED: boom\nmore: ma-ray jobs logs eta-1"
    assert not (tmp_path / TRACEBACK_FILE).exists()
    assert not summary.passed


def test_an_unexpected_error_keeps_its_traceback_in_a_file_the_message_names(tmp_path: Path) -> None:
    summary = DemoSummary.of(["generate"])
    try:
        raise OSError("No such file or directory: '/x'\nsecond line")
    except OSError as error:
        message = record_failure(summary.stages[0], error, tmp_path, 1)
    assert message.splitlines() == [
        "error: stage 1/1 (generate) failed: OSError: No such file or directory: '/x'",
        f"more: cat {tmp_path.absolute() / TRACEBACK_FILE}",
    ]
    assert "Traceback" in (tmp_path / TRACEBACK_FILE).read_text()


def test_the_summary_is_json_with_every_stage(tmp_path: Path) -> None:
    summary = DemoSummary.of(["a", "b"])
    summary.stages[0].outcome, summary.stages[0].figures = "passed", {"as_of": Path("x"), "rows": 3}
    summary.write(tmp_path / "s" / "summary.json")
    written = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert written["passed"] is False
    outcomes = [(s["number"], s["title"], s["outcome"]) for s in written["stages"]]
    assert outcomes == [(1, "a", "passed"), (2, "b", "not run")]
    assert written["stages"][0]["figures"] == {"as_of": "x", "rows": 3}
