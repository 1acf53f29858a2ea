"""Run records of the batch pipeline, and the retry policy a run follows.

Each (group, day) run writes one JSON record next to the offline snapshots, under
``<offline root>/_runs/<catalog>/<group>/<YYYY-MM-DD>/<run id>.json``: its inputs (raw files, dates, rows), the
snapshot it published (path, content hash = version, rows), what it loaded online, every attempt's error and
its final status. Records are written when a run starts and rewritten on each attempt and at the end (each
write is a whole file replaced by a rename), so a crashed run is visible as ``running``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

import pyarrow.fs as pafs
from pydantic import BaseModel, ConfigDict, Field

from ma_ray.storage import filesystem_and_path

RUNS = "_runs"


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RunMode(StrEnum):
    INCREMENTAL = "incremental"  # snapshot + online load
    BACKFILL = "backfill"  # snapshot only: past days, for training data


class RetryPolicy(BaseModel):
    """Exponential backoff: attempt k (from 1) waits ``backoff_s * multiplier**(k-1)`` (at most ``max_backoff_s``)
    before attempt k+1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(default=3, ge=1, le=20)
    backoff_s: float = Field(default=2.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_backoff_s: float = Field(default=60.0, ge=0)

    def delay_s(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * self.multiplier ** (attempt - 1))


class RunRecord(BaseModel):
    """One run of one group for one day."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16])
    catalog: str
    group: str
    snapshot_date: dt.date
    mode: RunMode
    status: RunStatus = RunStatus.RUNNING
    attempts: int = 0
    errors: list[str] = Field(default_factory=list, description="one line per failed attempt")
    inputs: dict[str, Any] = Field(default_factory=dict, description="raw table, uri, dates, files, rows")
    snapshot_path: str | None = None
    snapshot_version: str | None = Field(default=None, description="the snapshot's content SHA-256")
    snapshot_rows: int | None = None
    reused_snapshot: bool = Field(default=False, description="the day's snapshot existed: not recomputed")
    online_rows: int | None = Field(default=None, description="rows written to the online store; None: not loaded")
    engine: str | None = Field(default=None, description="what computed the snapshot: local or ray_data")
    compute_s: float | None = None
    load_s: float | None = None
    started_at: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: dt.datetime | None = None

    @property
    def snapshot_id(self) -> str:
        return f"{self.catalog}.{self.group}.{self.snapshot_date.isoformat()}"

    @property
    def error(self) -> str | None:
        return self.errors[-1] if self.errors else None


class RunStore:
    """Run records as JSON files under ``<root>/_runs`` on any `pyarrow.fs` filesystem."""

    def __init__(self, root_uri: str) -> None:
        self.fs, root = filesystem_and_path(root_uri)
        self.root = f"{root}/{RUNS}"

    def save(self, record: RunRecord) -> None:
        folder = f"{self.root}/{record.catalog}/{record.group}/{record.snapshot_date.isoformat()}"
        self.fs.create_dir(folder, recursive=True)
        temporary = f"{folder}/.{record.run_id}.{uuid.uuid4().hex[:8]}.tmp"
        with self.fs.open_output_stream(temporary) as out:
            out.write(record.model_dump_json(indent=2).encode())
        self.fs.move(temporary, f"{folder}/{record.run_id}.json")

    def runs(self, catalog: str, group: str, snapshot_date: dt.date | None = None) -> list[RunRecord]:
        """Every run of a group (of one day when given), oldest first."""
        base = f"{self.root}/{catalog}/{group}"
        folder = f"{base}/{snapshot_date.isoformat()}" if snapshot_date else base
        if self.fs.get_file_info(folder).type != pafs.FileType.Directory:
            return []
        found = []
        for info in self.fs.get_file_info(pafs.FileSelector(folder, recursive=True)):
            if info.type == pafs.FileType.File and info.base_name.endswith(".json"):
                with self.fs.open_input_stream(info.path) as stream:
                    found.append(RunRecord.model_validate_json(stream.read()))
        return sorted(found, key=lambda r: (r.started_at, r.run_id))

    def last_success(self, catalog: str, group: str, snapshot_date: dt.date, mode: RunMode) -> RunRecord | None:
        done = [
            r
            for r in self.runs(catalog, group, snapshot_date)
            if r.status is RunStatus.SUCCEEDED and (r.mode is mode or r.mode is RunMode.INCREMENTAL)
        ]
        return done[-1] if done else None
