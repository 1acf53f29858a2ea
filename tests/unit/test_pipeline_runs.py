"""Retry with backoff, failure reporting and run records of the batch pipeline (no Ray: attempts are stubbed)."""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path

import pytest

from ma_ray.config import load_settings
from ma_ray.palette.pipelines import (
    BatchPipeline,
    BatchRunError,
    RawSchemaError,
    RetryPolicy,
    RunMode,
    RunRecord,
    RunStatus,
    RunStore,
)
from ma_ray.palette.repository import load_repository

DAY = date(2026, 1, 7)


class _Scripted(BatchPipeline):
    """A pipeline whose attempts fail as scripted (an exception, or None for success)."""

    def __init__(self, outcomes: list[BaseException | None], **kwargs: object) -> None:
        with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
            repo = load_repository(path)
        super().__init__(repo, kwargs.pop("settings"), **kwargs)  # type: ignore[arg-type]
        self.outcomes = outcomes
        self.seen: list[int] = []

    def _attempt(self, plan, as_of, mode, record) -> None:  # type: ignore[override]
        self.seen.append(record.attempts)
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        record.snapshot_rows = 3


def _pipeline(tmp_path: Path, outcomes: list[BaseException | None], attempts: int = 3) -> tuple[_Scripted, list]:
    sleeps: list[float] = []
    pipeline = _Scripted(
        outcomes,
        settings=load_settings(state_dir=tmp_path),
        retry=RetryPolicy(attempts=attempts, backoff_s=0.5, multiplier=3),
        sleep=sleeps.append,
    )
    return pipeline, sleeps


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(attempts=5, backoff_s=1, multiplier=2, max_backoff_s=5)
    assert [policy.delay_s(k) for k in range(1, 6)] == [1, 2, 4, 5, 5]


def test_a_failed_attempt_is_retried_with_backoff(tmp_path: Path) -> None:
    pipeline, sleeps = _pipeline(tmp_path, [OSError("cassandra timed out"), None])
    record = pipeline.run_day(pipeline.plans(["driver_stats"])[0], DAY)
    assert (record.status, record.attempts, pipeline.seen, sleeps) == (RunStatus.SUCCEEDED, 2, [1, 2], [0.5])
    assert record.errors == ["attempt 1: OSError: cassandra timed out"]
    assert pipeline.runs.runs("rideshare", "driver_stats", DAY)[-1].status is RunStatus.SUCCEEDED


def test_final_failure_is_recorded_and_raised(tmp_path: Path) -> None:
    pipeline, sleeps = _pipeline(tmp_path, [OSError("down")] * 3)
    with pytest.raises(BatchRunError, match="failed after 3 attempt\\(s\\): attempt 3: OSError: down") as raised:
        pipeline.run(DAY, groups=["driver_stats"])
    assert sleeps == [0.5, 1.5]
    record = raised.value.record
    assert record.status is RunStatus.FAILED and record.finished_at is not None
    stored = pipeline.runs.runs("rideshare", "driver_stats", DAY)
    assert [(r.run_id, r.status, len(r.errors)) for r in stored] == [(record.run_id, RunStatus.FAILED, 3)]


def test_declaration_errors_are_not_retried(tmp_path: Path) -> None:
    pipeline, sleeps = _pipeline(tmp_path, [RawSchemaError("column 'distance_km' is string")])
    record = pipeline.run_day(pipeline.plans(["driver_stats"])[0], DAY)
    assert (record.status, record.attempts, sleeps) == (RunStatus.FAILED, 1, [])
    assert "distance_km" in (record.error or "")


def test_days_already_done_are_skipped_unless_forced(tmp_path: Path) -> None:
    pipeline, _ = _pipeline(tmp_path, [None, None, None])
    first = pipeline.run(DAY, groups=["driver_stats"])
    again = pipeline.run(DAY, groups=["driver_stats"])
    assert [r.run_id for r in again] == [r.run_id for r in first] and pipeline.seen == [1]
    pipeline.run(DAY, groups=["driver_stats"], force=True)
    assert pipeline.seen == [1, 1]
    # A backfill of a day an incremental run did is done too; an incremental one after a backfill is not.
    assert pipeline.run(DAY, groups=["driver_stats"], mode=RunMode.BACKFILL)[0].mode is RunMode.INCREMENTAL


def test_streaming_groups_are_left_to_the_streaming_path(tmp_path: Path) -> None:
    pipeline, _ = _pipeline(tmp_path, [])
    with pytest.raises(ValueError, match="streaming path"):
        pipeline.plans(["driver_realtime"])


def test_run_store_round_trip(tmp_path: Path) -> None:
    store = RunStore(str(tmp_path))
    record = RunRecord(catalog="c", group="g", snapshot_date=DAY, mode=RunMode.BACKFILL, inputs={"rows": 5})
    store.save(record)
    record.status = RunStatus.SUCCEEDED
    store.save(record)
    assert store.runs("c", "g") == [record]
    assert store.last_success("c", "g", DAY, RunMode.BACKFILL) == record
    assert store.last_success("c", "g", DAY, RunMode.INCREMENTAL) is None
    assert not list(tmp_path.rglob("*.tmp"))
