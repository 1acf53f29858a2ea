"""The embedded meta store: one SQLite file, safe for several processes (WAL, immediate transactions)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ma_ray.config import Settings
from ma_ray.palette.lineage import Edge
from ma_ray.palette.meta_store.base import GroupVersion, VersionConflictError
from ma_ray.sqlite_file import SqliteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    catalog TEXT NOT NULL, name TEXT NOT NULL, definition TEXT NOT NULL, PRIMARY KEY (catalog, name));
CREATE TABLE IF NOT EXISTS group_versions (
    catalog TEXT NOT NULL, group_name TEXT NOT NULL, version INTEGER NOT NULL, definition TEXT NOT NULL,
    applied_at TEXT NOT NULL, applied_by TEXT NOT NULL, PRIMARY KEY (catalog, group_name, version));
CREATE TABLE IF NOT EXISTS lineage (parent TEXT NOT NULL, child TEXT NOT NULL, PRIMARY KEY (parent, child));
CREATE INDEX IF NOT EXISTS lineage_by_child ON lineage (child, parent);
"""


class SqliteMetaStore:
    @classmethod
    def from_settings(cls, settings: Settings) -> SqliteMetaStore:
        return cls(settings.state_dir.absolute() / "palette_meta.sqlite")

    def __init__(self, path: str | Path) -> None:
        self._file = SqliteFile(path, _SCHEMA)
        self._read = self._file.read

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._file.transaction(lambda db: db.executemany(sql, rows))

    def put_entity(self, catalog: str, name: str, definition: str) -> None:
        self._write("INSERT OR REPLACE INTO entities VALUES (?, ?, ?)", [(catalog, name, definition)])

    def entities(self, catalog: str) -> dict[str, str]:
        return dict(self._read("SELECT name, definition FROM entities WHERE catalog = ? ORDER BY name", (catalog,)))

    def put_group_version(self, version: GroupVersion) -> None:
        row = (
            version.catalog,
            version.group,
            version.version,
            version.definition,
            version.applied_at.isoformat(),
            version.applied_by,
        )
        try:
            self._write("INSERT INTO group_versions VALUES (?, ?, ?, ?, ?, ?)", [row])
        except sqlite3.IntegrityError:
            raise VersionConflictError(
                f"version {version.version} of {version.catalog}.{version.group} was registered by another writer"
            ) from None

    def group_version(self, catalog: str, group: str, version: int | None = None) -> GroupVersion | None:
        sql = "SELECT * FROM group_versions WHERE catalog = ? AND group_name = ?"
        if version is None:
            rows = self._read(sql + " ORDER BY version DESC LIMIT 1", (catalog, group))
        else:
            rows = self._read(sql + " AND version = ?", (catalog, group, version))
        return _version(rows[0]) if rows else None

    def group_versions(self, catalog: str, group: str) -> list[GroupVersion]:
        sql = "SELECT * FROM group_versions WHERE catalog = ? AND group_name = ? ORDER BY version"
        return [_version(row) for row in self._read(sql, (catalog, group))]

    def groups(self, catalog: str) -> list[str]:
        sql = "SELECT DISTINCT group_name FROM group_versions WHERE catalog = ? ORDER BY group_name"
        return [row[0] for row in self._read(sql, (catalog,))]

    def catalogs(self) -> list[str]:
        sql = "SELECT catalog FROM entities UNION SELECT catalog FROM group_versions ORDER BY 1"
        return [row[0] for row in self._read(sql, ())]

    def add_edges(self, edges: list[Edge]) -> None:
        self._write("INSERT OR IGNORE INTO lineage VALUES (?, ?)", [(e.parent, e.child) for e in edges])

    def children(self, node: str) -> list[str]:
        return [row[0] for row in self._read("SELECT child FROM lineage WHERE parent = ? ORDER BY child", (node,))]

    def parents(self, node: str) -> list[str]:
        return [row[0] for row in self._read("SELECT parent FROM lineage WHERE child = ? ORDER BY parent", (node,))]

    def close(self) -> None:
        self._file.close()


def _version(row: tuple[Any, ...]) -> GroupVersion:
    catalog, group, version, definition, applied_at, applied_by = row
    return GroupVersion(
        catalog, group, version, definition, datetime.fromisoformat(applied_at).astimezone(UTC), applied_by
    )
