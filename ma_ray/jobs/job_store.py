"""Persisted training jobs: records, an event log, archived logs and the outcome of each attempt.

The job controller writes records and events; the training entrypoint (`apps.train`, another process on
another node) writes the outcome of its attempt; the CLI reads. Two backends behind one protocol, picked by
``settings.meta_store`` like the feature catalog: an SQLite file (embedded) and Cassandra (production).
Records are stored whole as JSON: the controller is their only writer, so no field-level merging is needed.
"""

from __future__ import annotations

import builtins
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ma_ray.config import Settings
from ma_ray.jobs.workflow import JobRecord
from ma_ray.sqlite_file import SqliteFile

MAX_LOG_CHARS = 1_000_000  # the tail is what explains a failure; keep rows bounded


@dataclass(frozen=True)
class JobEvent:
    job_id: str
    at: float
    message: str


class JobStore(Protocol):
    def put(self, record: JobRecord) -> None:
        """Insert or replace a job record."""

    def get(self, job_id: str) -> JobRecord | None: ...

    def list(self) -> list[JobRecord]:
        """Every job, oldest first."""

    def add_event(self, job_id: str, message: str) -> None: ...

    def events(self, job_id: str) -> builtins.list[JobEvent]:
        """A job's events, oldest first."""

    def put_logs(self, job_id: str, attempt: int, text: str) -> None: ...

    def logs(self, job_id: str) -> dict[int, str]:
        """Archived logs by attempt number."""

    def put_outcome(self, job_id: str, attempt: int, outcome: dict[str, Any]) -> None: ...

    def outcome(self, job_id: str, attempt: int) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


def known_job(store: JobStore, job_id: str) -> JobRecord:
    """The job's record; ``KeyError`` saying where to look for an unknown job."""
    record = store.get(job_id)
    if record is None:
        raise KeyError(f"no job {job_id!r}: `ma-ray jobs list` shows the known ones")
    return record


def job_status(store: JobStore, job_id: str) -> dict[str, Any]:
    """A job's record with its events and its last attempt's outcome; ``KeyError`` for an unknown job."""
    record = known_job(store, job_id)
    events = [{"at": e.at, "message": e.message} for e in store.events(job_id)]
    outcome = store.outcome(job_id, record.attempt) if record.attempt else None
    return {**record.to_dict(), "events": events, "outcome": outcome}


def open_job_store(settings: Settings) -> JobStore:
    """The job store next to the meta store the settings name."""
    store: JobStore = settings.meta_store.build("job_store", settings)
    return store


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, created_at REAL NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS job_events (
    job_id TEXT NOT NULL, at REAL NOT NULL, id TEXT NOT NULL, message TEXT NOT NULL, PRIMARY KEY (job_id, at, id));
CREATE TABLE IF NOT EXISTS job_logs (
    job_id TEXT NOT NULL, attempt INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY (job_id, attempt));
CREATE TABLE IF NOT EXISTS job_outcomes (
    job_id TEXT NOT NULL, attempt INTEGER NOT NULL, outcome TEXT NOT NULL, PRIMARY KEY (job_id, attempt));
"""


class SqliteJobStore:
    def __init__(self, path: str | Path) -> None:
        self._file = SqliteFile(path, _SCHEMA)

    @classmethod
    def from_settings(cls, settings: Settings) -> SqliteJobStore:
        return cls(settings.state_dir.absolute() / "jobs.sqlite")

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        self._file.transaction(lambda db: db.execute(sql, args))

    def put(self, record: JobRecord) -> None:
        self._write(
            "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?)",
            (record.job_id, record.created_at, json.dumps(record.to_dict())),
        )

    def get(self, job_id: str) -> JobRecord | None:
        rows = self._file.read("SELECT record FROM jobs WHERE job_id = ?", (job_id,))
        return JobRecord.from_dict(json.loads(rows[0][0])) if rows else None

    def list(self) -> list[JobRecord]:
        rows = self._file.read("SELECT record FROM jobs ORDER BY created_at, job_id")
        return [JobRecord.from_dict(json.loads(row[0])) for row in rows]

    def add_event(self, job_id: str, message: str) -> None:
        self._write("INSERT INTO job_events VALUES (?, ?, ?, ?)", (job_id, time.time(), uuid.uuid4().hex, message))

    def events(self, job_id: str) -> builtins.list[JobEvent]:
        rows = self._file.read("SELECT at, message FROM job_events WHERE job_id = ? ORDER BY at, id", (job_id,))
        return [JobEvent(job_id, at, message) for at, message in rows]

    def put_logs(self, job_id: str, attempt: int, text: str) -> None:
        self._write("INSERT OR REPLACE INTO job_logs VALUES (?, ?, ?)", (job_id, attempt, text[-MAX_LOG_CHARS:]))

    def logs(self, job_id: str) -> dict[int, str]:
        rows = self._file.read("SELECT attempt, text FROM job_logs WHERE job_id = ? ORDER BY attempt", (job_id,))
        return dict(rows)

    def put_outcome(self, job_id: str, attempt: int, outcome: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO job_outcomes VALUES (?, ?, ?)", (job_id, attempt, json.dumps(outcome)))

    def outcome(self, job_id: str, attempt: int) -> dict[str, Any] | None:
        rows = self._file.read("SELECT outcome FROM job_outcomes WHERE job_id = ? AND attempt = ?", (job_id, attempt))
        return json.loads(rows[0][0]) if rows else None

    def close(self) -> None:
        self._file.close()


_TABLES = [
    "CREATE TABLE IF NOT EXISTS {ks}.jobs (bucket int, job_id text, created_at double, record text, "
    "PRIMARY KEY ((bucket), job_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.job_events (job_id text, at double, id uuid, message text, "
    "PRIMARY KEY ((job_id), at, id))",
    "CREATE TABLE IF NOT EXISTS {ks}.job_logs (job_id text, attempt int, text text, PRIMARY KEY ((job_id), attempt))",
    "CREATE TABLE IF NOT EXISTS {ks}.job_outcomes (job_id text, attempt int, outcome text, "
    "PRIMARY KEY ((job_id), attempt))",
]


class CassandraJobStore:
    """Jobs in one partition (a controller tracks thousands, not millions); events, logs and outcomes
    partitioned by job."""

    def __init__(self, settings: Settings, keyspace: str | None = None) -> None:
        from ma_ray.connections import open_keyspace

        self.keyspace = keyspace or f"{settings.cassandra.keyspace}_jobs"
        self._cluster, self._session = open_keyspace(settings, self.keyspace, _TABLES)
        ks, prepare = self.keyspace, self._session.prepare
        self._put = prepare(f"INSERT INTO {ks}.jobs (bucket, job_id, created_at, record) VALUES (0, ?, ?, ?)")
        self._get = prepare(f"SELECT record FROM {ks}.jobs WHERE bucket = 0 AND job_id = ?")
        self._list = prepare(f"SELECT record FROM {ks}.jobs WHERE bucket = 0")
        self._add_event = prepare(f"INSERT INTO {ks}.job_events (job_id, at, id, message) VALUES (?, ?, ?, ?)")
        self._events = prepare(f"SELECT at, message FROM {ks}.job_events WHERE job_id = ?")
        self._put_logs = prepare(f"INSERT INTO {ks}.job_logs (job_id, attempt, text) VALUES (?, ?, ?)")
        self._logs = prepare(f"SELECT attempt, text FROM {ks}.job_logs WHERE job_id = ?")
        self._put_outcome = prepare(f"INSERT INTO {ks}.job_outcomes (job_id, attempt, outcome) VALUES (?, ?, ?)")
        self._outcome = prepare(f"SELECT outcome FROM {ks}.job_outcomes WHERE job_id = ? AND attempt = ?")

    @classmethod
    def from_settings(cls, settings: Settings) -> CassandraJobStore:
        return cls(settings)

    def put(self, record: JobRecord) -> None:
        self._session.execute(self._put, (record.job_id, record.created_at, json.dumps(record.to_dict())))

    def get(self, job_id: str) -> JobRecord | None:
        row = self._session.execute(self._get, (job_id,)).one()
        return JobRecord.from_dict(json.loads(row.record)) if row else None

    def list(self) -> list[JobRecord]:
        records = [JobRecord.from_dict(json.loads(row.record)) for row in self._session.execute(self._list)]
        return sorted(records, key=lambda r: (r.created_at, r.job_id))

    def add_event(self, job_id: str, message: str) -> None:
        self._session.execute(self._add_event, (job_id, time.time(), uuid.uuid4(), message))

    def events(self, job_id: str) -> builtins.list[JobEvent]:
        return [JobEvent(job_id, row.at, row.message) for row in self._session.execute(self._events, (job_id,))]

    def put_logs(self, job_id: str, attempt: int, text: str) -> None:
        self._session.execute(self._put_logs, (job_id, attempt, text[-MAX_LOG_CHARS:]))

    def logs(self, job_id: str) -> dict[int, str]:
        return {row.attempt: row.text for row in self._session.execute(self._logs, (job_id,))}

    def put_outcome(self, job_id: str, attempt: int, outcome: dict[str, Any]) -> None:
        self._session.execute(self._put_outcome, (job_id, attempt, json.dumps(outcome)))

    def outcome(self, job_id: str, attempt: int) -> dict[str, Any] | None:
        row = self._session.execute(self._outcome, (job_id, attempt)).one()
        return json.loads(row.outcome) if row else None

    def drop(self) -> None:
        """Delete the keyspace (tests)."""
        self._session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}")

    def close(self) -> None:
        self._cluster.shutdown()
