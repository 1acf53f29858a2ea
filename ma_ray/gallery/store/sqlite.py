"""The embedded Gallery store: one SQLite file (WAL), every compare-and-set an immediate transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, TypeVar

from ma_ray.config import Settings
from ma_ray.gallery.models import (
    AliasEvent,
    AliasState,
    Deployment,
    DeploymentStatus,
    Lease,
    ModelVersion,
    RegisteredModel,
)
from ma_ray.sqlite_file import SqliteFile

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL, version INTEGER NOT NULL, record TEXT NOT NULL, PRIMARY KEY (model, version));
CREATE TABLE IF NOT EXISTS aliases (
    model TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER, seq INTEGER NOT NULL, PRIMARY KEY (model, alias));
CREATE TABLE IF NOT EXISTS alias_history (
    model TEXT NOT NULL, alias TEXT NOT NULL, seq INTEGER NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (model, alias, seq));
CREATE TABLE IF NOT EXISTS leases (
    model TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deployments (
    model TEXT NOT NULL, deployment_id TEXT NOT NULL, status TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (model, deployment_id));
"""


class SqliteGalleryStore:
    @classmethod
    def from_settings(cls, settings: Settings) -> SqliteGalleryStore:
        return cls(settings.state_dir.absolute() / "gallery.sqlite")

    def __init__(self, path: str | Path) -> None:
        self._file = SqliteFile(path, _SCHEMA)
        self._transaction = self._file.transaction
        self._read = self._file.read

    # ---- plumbing ------------------------------------------------------------------------------------------

    def _insert(self, sql: str, args: tuple[Any, ...]) -> bool:
        try:
            self._transaction(lambda db: db.execute(sql, args))
        except sqlite3.IntegrityError:
            return False
        return True

    # ---- models and versions ---------------------------------------------------------------------------------
    def create_model(self, model: RegisteredModel) -> bool:
        return self._insert("INSERT INTO models VALUES (?, ?)", (model.name, model.model_dump_json()))

    def get_model(self, name: str) -> RegisteredModel | None:
        rows = self._read("SELECT record FROM models WHERE name = ?", (name,))
        return RegisteredModel.model_validate_json(rows[0][0]) if rows else None

    def list_models(self) -> list[RegisteredModel]:
        return [RegisteredModel.model_validate_json(r[0]) for r in self._read("SELECT record FROM models ORDER BY 1")]

    def latest_version(self, model: str) -> int:
        latest: int = self._read("SELECT COALESCE(MAX(version), 0) FROM versions WHERE model = ?", (model,))[0][0]
        return latest

    def insert_version(self, version: ModelVersion) -> bool:
        row = (version.model, version.version, version.model_dump_json())
        return self._insert("INSERT INTO versions VALUES (?, ?, ?)", row)

    def get_version(self, model: str, version: int) -> ModelVersion | None:
        rows = self._read("SELECT record FROM versions WHERE model = ? AND version = ?", (model, version))
        return ModelVersion.model_validate_json(rows[0][0]) if rows else None

    def list_versions(self, model: str) -> list[ModelVersion]:
        rows = self._read("SELECT record FROM versions WHERE model = ? ORDER BY version", (model,))
        return [ModelVersion.model_validate_json(r[0]) for r in rows]

    # ---- aliases -------------------------------------------------------------------------------------------
    def alias_state(self, model: str, alias: str) -> AliasState | None:
        rows = self._read("SELECT version, seq FROM aliases WHERE model = ? AND alias = ?", (model, alias))
        return AliasState(version=rows[0][0], seq=rows[0][1]) if rows else None

    def cas_alias(self, event: AliasEvent, expected: AliasState | None) -> bool:
        def swap(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT version, seq FROM aliases WHERE model = ? AND alias = ?", (event.model, event.alias)
            ).fetchone()
            current = AliasState(version=row[0], seq=row[1]) if row else None
            if current != expected:
                return False
            db.execute(
                "INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?)",
                (event.model, event.alias, event.to_version, event.seq),
            )
            db.execute(
                "INSERT INTO alias_history VALUES (?, ?, ?, ?)",
                (event.model, event.alias, event.seq, event.model_dump_json()),
            )
            return True

        return self._transaction(swap)

    def aliases(self, model: str) -> dict[str, AliasState]:
        rows = self._read("SELECT alias, version, seq FROM aliases WHERE model = ? ORDER BY alias", (model,))
        return {alias: AliasState(version=version, seq=seq) for alias, version, seq in rows}

    def alias_history(self, model: str, alias: str) -> list[AliasEvent]:
        sql = "SELECT record FROM alias_history WHERE model = ? AND alias = ? ORDER BY seq"
        return [AliasEvent.model_validate_json(r[0]) for r in self._read(sql, (model, alias))]

    # ---- deployment lock -------------------------------------------------------------------------------------
    def try_acquire_lease(self, lease: Lease) -> Lease | None:
        def take(db: sqlite3.Connection) -> Lease | None:
            row = db.execute("SELECT record FROM leases WHERE model = ?", (lease.model,)).fetchone()
            if row:
                held = Lease.model_validate_json(row[0])
                if held.expires_at > lease.acquired_at:
                    return held
            db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)",
                (lease.model, lease.token, lease.expires_at.isoformat(), lease.model_dump_json()),
            )
            return None

        return self._transaction(take)

    def renew_lease(self, lease: Lease) -> bool:
        def renew(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE leases SET expires_at = ?, record = ? WHERE model = ? AND token = ?",
                (lease.expires_at.isoformat(), lease.model_dump_json(), lease.model, lease.token),
            )
            return cursor.rowcount == 1

        return self._transaction(renew)

    def release_lease(self, model: str, token: str) -> bool:
        return self._transaction(
            lambda db: db.execute("DELETE FROM leases WHERE model = ? AND token = ?", (model, token)).rowcount == 1
        )

    def current_lease(self, model: str) -> Lease | None:
        rows = self._read("SELECT record FROM leases WHERE model = ?", (model,))
        return Lease.model_validate_json(rows[0][0]) if rows else None

    # ---- deployments -----------------------------------------------------------------------------------------
    def insert_deployment(self, deployment: Deployment) -> None:
        d = deployment
        self._transaction(
            lambda db: db.execute(
                "INSERT INTO deployments VALUES (?, ?, ?, ?)",
                (d.model, d.deployment_id, d.status.value, d.model_dump_json()),
            )
        )

    def update_deployment(self, deployment: Deployment, expected: DeploymentStatus) -> bool:
        d = deployment
        sql = "UPDATE deployments SET status = ?, record = ? WHERE model = ? AND deployment_id = ? AND status = ?"
        args = (d.status.value, d.model_dump_json(), d.model, d.deployment_id, expected.value)
        return self._transaction(lambda db: db.execute(sql, args).rowcount == 1)

    def deployments(self, model: str, limit: int = 100) -> list[Deployment]:
        sql = "SELECT record FROM deployments WHERE model = ? ORDER BY deployment_id DESC LIMIT ?"
        return [Deployment.model_validate_json(r[0]) for r in self._read(sql, (model, limit))]

    def close(self) -> None:
        self._file.close()
