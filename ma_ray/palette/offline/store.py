"""The offline store: immutable daily Parquet snapshots per feature group, on any `pyarrow.fs` filesystem.

Layout under the root::

    <catalog>/<group>/snapshot_date=YYYY-MM-DD/part-00000.parquet ... _manifest.json
    _staging/<catalog>.<group>.<date>.<random>/          (writes in progress, or left by a crash)
    stream_log/<catalog>/<group>/<actor>/<offsets>.parquet  (what streaming wrote online, micro-batch by batch)

A snapshot is written whole in a staging folder, manifest last, then published by one rename of the folder:
on a local disk or HDFS the rename is atomic, so readers see the whole snapshot or none of it. Readers only
trust folders that hold a manifest and read only the files it lists. On object stores (s3://, gs://) a folder
rename is a copy, so a crash mid-publish can leave a folder without its manifest: invisible, and replaced by
the next write of that date.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ma_ray.palette.catalog import NAME_PATTERN
from ma_ray.palette.offline.snapshot import (
    MANIFEST,
    ColumnSpec,
    Manifest,
    SnapshotError,
    SnapshotInfo,
    content_checksum,
    validate_snapshot_table,
)
from ma_ray.storage import filesystem_and_path

if TYPE_CHECKING:
    import ray.data

STAGING = "_staging"
STREAM_LOG = "stream_log"
ROWS_PER_FILE = 1_000_000
_NAME = re.compile(NAME_PATTERN)
_FOLDER = re.compile(r"^snapshot_date=(\d{4}-\d{2}-\d{2})$")


class OfflineStore:
    """Daily snapshots of feature groups under ``root_uri`` (a local path, file://, s3://, gs://, hdfs://)."""

    def __init__(self, root_uri: str) -> None:
        self.fs, self.root = filesystem_and_path(root_uri)

    def write_snapshot(
        self, catalog: str, group: str, snapshot_date: dt.date, table: pa.Table, join_key: str
    ) -> SnapshotInfo:
        """Publish ``table`` as the group's snapshot of ``snapshot_date``.

        Snapshots are immutable: writing a date again is a no-op returning the existing snapshot when the
        content (schema and values, row order included) is the same, and raises `SnapshotError` otherwise.
        """
        validate_snapshot_table(table, join_key)
        final = self._snapshot_dir(catalog, group, snapshot_date)
        checksum = content_checksum(table)
        existing = self._existing(final, checksum)
        if existing is not None:
            return existing
        staging = f"{self.root}/{STAGING}/{catalog}.{group}.{snapshot_date.isoformat()}.{uuid.uuid4().hex}"
        self.fs.create_dir(staging, recursive=True)
        manifest = self._write_files(staging, catalog, group, snapshot_date, table, join_key, checksum)
        self._publish(staging, final, checksum)
        return SnapshotInfo.of(manifest, final)

    def snapshots(self, catalog: str, group: str) -> list[SnapshotInfo]:
        """Every published snapshot of the group, oldest first; [] if it has none."""
        group_dir = self._group_dir(catalog, group)
        if self.fs.get_file_info(group_dir).type != pafs.FileType.Directory:
            return []
        found = []
        for entry in self.fs.get_file_info(pafs.FileSelector(group_dir)):
            if entry.type == pafs.FileType.Directory and _FOLDER.match(entry.base_name):
                manifest = self._manifest(entry.path)
                if manifest is not None:
                    found.append(SnapshotInfo.of(manifest, entry.path))
        return sorted(found, key=lambda s: s.snapshot_date)

    def latest(self, catalog: str, group: str) -> SnapshotInfo | None:
        found = self.snapshots(catalog, group)
        return found[-1] if found else None

    def snapshot(self, catalog: str, group: str, snapshot_date: dt.date | None = None) -> SnapshotInfo:
        """The snapshot of ``snapshot_date`` (the latest when None); raises `SnapshotError` if there is none."""
        if snapshot_date is None:
            latest = self.latest(catalog, group)
            if latest is None:
                raise SnapshotError(f"{catalog}.{group} has no snapshot yet: write one with write_snapshot")
            return latest
        path = self._snapshot_dir(catalog, group, snapshot_date)
        manifest = self._manifest(path)
        if manifest is None:
            dates = ", ".join(s.snapshot_date.isoformat() for s in self.snapshots(catalog, group)) or "none"
            raise SnapshotError(f"{catalog}.{group} has no snapshot of {snapshot_date}; it has: {dates}")
        return SnapshotInfo.of(manifest, path)

    def dataset(self, catalog: str, group: str, snapshot_date: dt.date | None = None) -> ds.Dataset:
        """A lazy `pyarrow.dataset` over one snapshot (the latest by default), for reads larger than memory."""
        info = self.snapshot(catalog, group, snapshot_date)
        return ds.dataset(list(info.files), filesystem=self.fs, format="parquet")

    def read(
        self, catalog: str, group: str, snapshot_date: dt.date | None = None, columns: list[str] | None = None
    ) -> pa.Table:
        """One snapshot (the latest by default) as a table, optionally only some columns."""
        return self.dataset(catalog, group, snapshot_date).to_table(columns=columns)

    def ray_dataset(
        self, catalog: str, group: str, snapshot_date: dt.date | None = None, columns: list[str] | None = None
    ) -> ray.data.Dataset:
        """One snapshot (the latest by default) as a Ray dataset, read in parallel by the cluster."""
        import ray.data

        info = self.snapshot(catalog, group, snapshot_date)
        return ray.data.read_parquet(list(info.files), filesystem=self.fs, columns=columns)

    def stream_log_dir(self, catalog: str, group: str, actor: str) -> str:
        """Where an aggregation actor logs the rows it wrote online (one file per micro-batch, named by the
        offsets it starts at, so a replay overwrites rather than duplicates)."""
        return f"{self.root}/{STREAM_LOG}/{catalog}/{group}/{actor}"

    def read_stream_log(self, catalog: str, group: str, columns: list[str] | None = None) -> pa.Table | None:
        """Every row a streaming group wrote online, from all its actors; None if it never logged any."""
        group_dir = f"{self.root}/{STREAM_LOG}/{catalog}/{group}"
        if self.fs.get_file_info(group_dir).type != pafs.FileType.Directory:
            return None
        files = [
            entry.path
            for entry in self.fs.get_file_info(pafs.FileSelector(group_dir, recursive=True))
            if entry.type == pafs.FileType.File and entry.base_name.endswith(".parquet")
        ]
        if not files:
            return None
        return ds.dataset(sorted(files), filesystem=self.fs, format="parquet").to_table(columns=columns)

    def apply_retention(
        self,
        catalog: str,
        group: str,
        keep_last: int,
        max_age_days: int | None = None,
        today: dt.date | None = None,
    ) -> list[SnapshotInfo]:
        """Delete the snapshots beyond the newest ``keep_last`` or older than ``max_age_days``; returns them.

        The latest snapshot is never deleted, whatever its age, so a failed daily load leaves the last good
        one in place. Also removes staging folders left by crashed writes (see `clean_staging`).
        """
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1 (the latest snapshot is always kept), got {keep_last}")
        if max_age_days is not None and max_age_days < 0:
            raise ValueError(f"max_age_days must be >= 0 or None, got {max_age_days}")
        today = today or dt.datetime.now(dt.UTC).date()
        found = self.snapshots(catalog, group)
        doomed = [
            s
            for rank, s in enumerate(reversed(found[:-1]), start=1)
            if rank >= keep_last or (max_age_days is not None and (today - s.snapshot_date).days > max_age_days)
        ]
        for info in doomed:
            # Manifest first: from then on readers no longer see the snapshot, whatever the rest takes.
            self.fs.delete_file(f"{info.path}/{MANIFEST}")
            self.fs.delete_dir(info.path)
        self.clean_staging()
        return sorted(doomed, key=lambda s: s.snapshot_date)

    def clean_staging(self, min_age_s: float = 3600) -> list[str]:
        """Remove staging folders older than ``min_age_s`` (younger ones may be writes in progress)."""
        staging = f"{self.root}/{STAGING}"
        if self.fs.get_file_info(staging).type != pafs.FileType.Directory:
            return []
        cutoff = time.time() - min_age_s
        removed = []
        for entry in self.fs.get_file_info(pafs.FileSelector(staging)):
            modified = entry.mtime.timestamp() if entry.mtime is not None else 0.0
            if modified <= cutoff:
                self.fs.delete_dir(entry.path)
                removed.append(entry.path)
        return removed

    def _write_files(
        self,
        folder: str,
        catalog: str,
        group: str,
        snapshot_date: dt.date,
        table: pa.Table,
        join_key: str,
        checksum: str,
    ) -> Manifest:
        files = []
        for part, start in enumerate(range(0, max(table.num_rows, 1), ROWS_PER_FILE)):
            name = f"part-{part:05d}.parquet"
            pq.write_table(table.slice(start, ROWS_PER_FILE), f"{folder}/{name}", filesystem=self.fs)
            files.append(name)
        manifest = Manifest(
            catalog=catalog,
            group=group,
            snapshot_date=snapshot_date,
            join_key=join_key,
            rows=table.num_rows,
            columns=tuple(ColumnSpec(name=f.name, type=str(f.type)) for f in table.schema),
            files=tuple(files),
            content_sha256=checksum,
            created_at=dt.datetime.now(dt.UTC),
        )
        with self.fs.open_output_stream(f"{folder}/{MANIFEST}") as out:
            out.write(manifest.model_dump_json(indent=2).encode())
        return manifest

    def _publish(self, staging: str, final: str, checksum: str) -> None:
        leftover = self.fs.get_file_info(final)
        if leftover.type == pafs.FileType.Directory:
            # A folder without a manifest: a publish on an object store that crashed half-way.
            self.fs.delete_dir(final)
        self.fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
        try:
            self.fs.move(staging, final)
        except OSError as error:
            # Lost a race with another writer of the same date: fine if it wrote the same content.
            self.fs.delete_dir(staging)
            if self._existing(final, checksum) is None:
                raise SnapshotError(f"could not publish snapshot {final}: {error}") from error

    def _existing(self, final: str, checksum: str) -> SnapshotInfo | None:
        manifest = self._manifest(final)
        if manifest is None:
            return None
        if manifest.content_sha256 != checksum:
            raise SnapshotError(
                f"snapshot {final} already exists with different content; snapshots are immutable: "
                "write a new snapshot_date instead"
            )
        return SnapshotInfo.of(manifest, final)

    def _manifest(self, folder: str) -> Manifest | None:
        path = f"{folder}/{MANIFEST}"
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(path) as stream:
            return Manifest.model_validate_json(stream.read())

    def _group_dir(self, catalog: str, group: str) -> str:
        for kind, name in (("catalog", catalog), ("group", group)):
            if not _NAME.match(name):
                raise ValueError(f"{kind} name '{name}' must match {NAME_PATTERN} (lower-case, digits, _)")
        return f"{self.root}/{catalog}/{group}"

    def _snapshot_dir(self, catalog: str, group: str, snapshot_date: dt.date) -> str:
        return f"{self._group_dir(catalog, group)}/snapshot_date={snapshot_date.isoformat()}"
