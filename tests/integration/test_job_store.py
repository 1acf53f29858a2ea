"""The job store's behaviour, identical on embedded SQLite and on the real Cassandra."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from ma_ray.jobs.job_store import CassandraJobStore, JobStore, SqliteJobStore, open_job_store
from ma_ray.jobs.workflow import JobRecord, JobState, started
from tests.integration.conftest import store_per_backend


@pytest.fixture(params=["sqlite", "cassandra"])
def job_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    sqlite = partial(SqliteJobStore, tmp_path / "jobs.sqlite")
    yield from store_per_backend(request, sqlite, lambda s, keyspace: CassandraJobStore(s, keyspace=keyspace), "jobs")


def record(job_id: str, created_at: float) -> JobRecord:
    return JobRecord(job_id, {"name": "eta", "framework": "xgboost"}, tier=2, created_at=created_at)


def test_records_round_trip_replace_and_list_in_creation_order(job_store: JobStore) -> None:
    assert job_store.get("nope") is None
    assert job_store.list() == []
    first, second = record("job-b", 1.0), record("job-a", 2.0)
    job_store.put(second)
    job_store.put(first)
    assert job_store.get("job-b") == first
    running = started(first, "local", "http://127.0.0.1:8265")
    job_store.put(running)
    assert job_store.get("job-b") == running
    assert job_store.get("job-b").state is JobState.RUNNING
    assert [r.job_id for r in job_store.list()] == ["job-b", "job-a"]


def test_events_logs_and_outcomes_are_kept_per_job(job_store: JobStore) -> None:
    for message in ("submitted", "attempt 1 on local", "attempt 1 failed"):
        job_store.add_event("job-1", message)
    job_store.add_event("job-2", "other")
    assert [e.message for e in job_store.events("job-1")] == ["submitted", "attempt 1 on local", "attempt 1 failed"]
    assert job_store.events("none") == []
    job_store.put_logs("job-1", 2, "second")
    job_store.put_logs("job-1", 1, "first")
    job_store.put_logs("job-1", 1, "first, archived again")
    assert job_store.logs("job-1") == {1: "first, archived again", 2: "second"}
    assert job_store.outcome("job-1", 1) is None
    job_store.put_outcome("job-1", 1, {"status": "succeeded", "metrics": {"rmse": 1.5}})
    assert job_store.outcome("job-1", 1) == {"status": "succeeded", "metrics": {"rmse": 1.5}}
    assert job_store.outcome("job-1", 2) is None


def test_settings_pick_the_backend(tmp_path: Path) -> None:
    from ma_ray.config import load_settings

    store = open_job_store(load_settings(state_dir=tmp_path))
    try:
        assert isinstance(store, SqliteJobStore)
        store.put(record("job-x", 1.0))
        assert (tmp_path / "jobs.sqlite").exists()
    finally:
        store.close()
