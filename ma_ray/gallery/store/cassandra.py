"""The production Gallery store on Cassandra: one table per query, every check-then-write a lightweight
transaction (Paxos). An alias and its history share one partition, so moving the alias and appending the
history row are one conditional batch: the history can never disagree with the alias."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

from cassandra import ConsistencyLevel, WriteTimeout
from cassandra.query import BatchStatement, BoundStatement, PreparedStatement

from ma_ray.config import Settings
from ma_ray.connections import open_keyspace
from ma_ray.gallery.models import (
    AliasEvent,
    AliasState,
    Deployment,
    DeploymentStatus,
    Lease,
    ModelVersion,
    RegisteredModel,
)

_TABLES = [
    "CREATE TABLE IF NOT EXISTS {ks}.models (bucket int, name text, record text, PRIMARY KEY ((bucket), name))",
    "CREATE TABLE IF NOT EXISTS {ks}.versions (model text, version int, record text, "
    "PRIMARY KEY ((model), version)) WITH CLUSTERING ORDER BY (version DESC)",
    # current_* are static: one value per (model, alias) partition, beside its history rows.
    "CREATE TABLE IF NOT EXISTS {ks}.alias_log (model text, alias text, seq int, record text, "
    "current_version int static, current_seq int static, PRIMARY KEY ((model, alias), seq)) "
    "WITH CLUSTERING ORDER BY (seq DESC)",
    "CREATE TABLE IF NOT EXISTS {ks}.alias_names (model text, alias text, PRIMARY KEY ((model), alias))",
    "CREATE TABLE IF NOT EXISTS {ks}.leases (model text PRIMARY KEY, lease_token text, record text)",
    "CREATE TABLE IF NOT EXISTS {ks}.deployments (model text, deployment_id text, status text, record text, "
    "PRIMARY KEY ((model), deployment_id)) WITH CLUSTERING ORDER BY (deployment_id DESC)",
]


class CassandraGalleryStore:
    @classmethod
    def from_settings(cls, settings: Settings) -> CassandraGalleryStore:
        return cls(settings)

    def __init__(self, settings: Settings, keyspace: str | None = None) -> None:
        self.keyspace = keyspace or f"{settings.cassandra.keyspace}_gallery"
        self._cluster, self._session = open_keyspace(settings, self.keyspace, _TABLES)
        self._prepare()

    def _prepare(self) -> None:
        ks, p = self.keyspace, self._session.prepare
        self._create_model = p(f"INSERT INTO {ks}.models (bucket, name, record) VALUES (0, ?, ?) IF NOT EXISTS")
        self._get_model = p(f"SELECT record FROM {ks}.models WHERE bucket = 0 AND name = ?")
        self._list_models = p(f"SELECT record FROM {ks}.models WHERE bucket = 0")
        self._insert_version = p(f"INSERT INTO {ks}.versions (model, version, record) VALUES (?, ?, ?) IF NOT EXISTS")
        self._latest = p(f"SELECT version FROM {ks}.versions WHERE model = ? LIMIT 1")
        self._get_version = p(f"SELECT record FROM {ks}.versions WHERE model = ? AND version = ?")
        self._list_versions = p(f"SELECT record FROM {ks}.versions WHERE model = ?")
        self._alias_state = p(
            f"SELECT current_version, current_seq FROM {ks}.alias_log WHERE model = ? AND alias = ? LIMIT 1"
        )
        self._alias_state.is_idempotent = True
        self._move_alias = p(
            f"UPDATE {ks}.alias_log SET current_version = ?, current_seq = ? WHERE model = ? AND alias = ? "
            "IF current_seq = ?"
        )
        self._log_alias = p(f"INSERT INTO {ks}.alias_log (model, alias, seq, record) VALUES (?, ?, ?, ?)")
        self._history_row = p(f"SELECT record FROM {ks}.alias_log WHERE model = ? AND alias = ? AND seq = ?")
        self._history = p(f"SELECT record FROM {ks}.alias_log WHERE model = ? AND alias = ?")
        self._add_alias_name = p(f"INSERT INTO {ks}.alias_names (model, alias) VALUES (?, ?)")
        self._alias_names = p(f"SELECT alias FROM {ks}.alias_names WHERE model = ?")
        self._take_lease = p(
            f"INSERT INTO {ks}.leases (model, lease_token, record) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?"
        )
        self._swap_lease = p(
            f"UPDATE {ks}.leases USING TTL ? SET lease_token = ?, record = ? WHERE model = ? IF lease_token = ?"
        )
        self._release_lease = p(f"DELETE FROM {ks}.leases WHERE model = ? IF lease_token = ?")
        self._get_lease = p(f"SELECT record FROM {ks}.leases WHERE model = ?")
        self._insert_deployment = p(
            f"INSERT INTO {ks}.deployments (model, deployment_id, status, record) VALUES (?, ?, ?, ?) IF NOT EXISTS"
        )
        self._update_deployment = p(
            f"UPDATE {ks}.deployments SET status = ?, record = ? WHERE model = ? AND deployment_id = ? IF status = ?"
        )
        self._deployments = p(f"SELECT record FROM {ks}.deployments WHERE model = ? LIMIT ?")
        self._get_deployment = p(f"SELECT record FROM {ks}.deployments WHERE model = ? AND deployment_id = ?")

    # ---- plumbing ------------------------------------------------------------------------------------------
    def _one(self, statement: PreparedStatement, args: tuple[Any, ...], serial: bool = False) -> str | None:
        bound = statement.bind(args)
        if serial:
            bound.consistency_level = ConsistencyLevel.SERIAL
        row = self._session.execute(bound).one()
        return row[0] if row else None

    def _lwt(self, statement: BoundStatement | BatchStatement, applied_if: Callable[[], bool]) -> bool:
        """Run a lightweight transaction. A Paxos timeout leaves the outcome unknown: ``applied_if`` then
        reads back (at SERIAL) whether this very write landed."""
        try:
            return bool(self._session.execute(statement).was_applied)
        except WriteTimeout:
            return applied_if()

    # ---- models and versions ---------------------------------------------------------------------------------
    def create_model(self, model: RegisteredModel) -> bool:
        record = model.model_dump_json()
        return self._lwt(
            self._create_model.bind((model.name, record)),
            lambda: self._one(self._get_model, (model.name,), serial=True) == record,
        )

    def get_model(self, name: str) -> RegisteredModel | None:
        record = self._one(self._get_model, (name,))
        return RegisteredModel.model_validate_json(record) if record else None

    def list_models(self) -> list[RegisteredModel]:
        models = [RegisteredModel.model_validate_json(r.record) for r in self._session.execute(self._list_models)]
        return sorted(models, key=lambda m: m.name)

    def latest_version(self, model: str) -> int:
        latest = cast("int | None", self._one(self._latest, (model,)))  # the MAX(version) column is an int
        return latest or 0

    def insert_version(self, version: ModelVersion) -> bool:
        record = version.model_dump_json()
        key = (version.model, version.version)
        return self._lwt(
            self._insert_version.bind((*key, record)),
            lambda: self._one(self._get_version, key, serial=True) == record,
        )

    def get_version(self, model: str, version: int) -> ModelVersion | None:
        record = self._one(self._get_version, (model, version))
        return ModelVersion.model_validate_json(record) if record else None

    def list_versions(self, model: str) -> list[ModelVersion]:
        rows = self._session.execute(self._list_versions, (model,))
        return sorted((ModelVersion.model_validate_json(r.record) for r in rows), key=lambda v: v.version)

    # ---- aliases -------------------------------------------------------------------------------------------
    def alias_state(self, model: str, alias: str) -> AliasState | None:
        row = self._session.execute(self._alias_state, (model, alias)).one()
        if row is None or row.current_seq is None:
            return None
        return AliasState(version=row.current_version, seq=row.current_seq)

    def cas_alias(self, event: AliasEvent, expected: AliasState | None) -> bool:
        # The name is listed first (idempotent, harmless if the swap then loses), so a listing never misses it.
        self._session.execute(self._add_alias_name, (event.model, event.alias))
        record = event.model_dump_json()
        batch = BatchStatement()
        batch.add(
            self._move_alias,
            (event.to_version, event.seq, event.model, event.alias, expected.seq if expected else None),
        )
        batch.add(self._log_alias, (event.model, event.alias, event.seq, record))
        return self._lwt(
            batch, lambda: self._one(self._history_row, (event.model, event.alias, event.seq), serial=True) == record
        )

    def aliases(self, model: str) -> dict[str, AliasState]:
        names = sorted(row.alias for row in self._session.execute(self._alias_names, (model,)))
        states = {name: self.alias_state(model, name) for name in names}
        return {name: state for name, state in states.items() if state is not None}

    def alias_history(self, model: str, alias: str) -> list[AliasEvent]:
        rows = self._session.execute(self._history, (model, alias))
        events = [AliasEvent.model_validate_json(r.record) for r in rows if r.record]
        return sorted(events, key=lambda e: e.seq)

    # ---- deployment lock -------------------------------------------------------------------------------------
    def try_acquire_lease(self, lease: Lease) -> Lease | None:
        ttl = _ttl_s(lease)
        record = lease.model_dump_json()

        def mine() -> bool:
            return self._one(self._get_lease, (lease.model,), serial=True) == record

        try:
            result = self._session.execute(self._take_lease, (lease.model, lease.token, record, ttl))
        except WriteTimeout:
            return None if mine() else self.current_lease(lease.model)
        if result.was_applied:
            return None
        held = Lease.model_validate_json(result.one().record)
        if held.expires_at > lease.acquired_at:
            return held
        # Expired by its own clock but its row outlived it (TTLs are whole seconds): take it over by token.
        swap = self._swap_lease.bind((ttl, lease.token, record, lease.model, held.token))
        return None if self._lwt(swap, mine) else self.current_lease(lease.model)

    def renew_lease(self, lease: Lease) -> bool:
        record = lease.model_dump_json()
        swap = self._swap_lease.bind((_ttl_s(lease), lease.token, record, lease.model, lease.token))
        return self._lwt(swap, lambda: self._one(self._get_lease, (lease.model,), serial=True) == record)

    def release_lease(self, model: str, token: str) -> bool:
        return self._lwt(
            self._release_lease.bind((model, token)),
            lambda: self._one(self._get_lease, (model,), serial=True) is None,
        )

    def current_lease(self, model: str) -> Lease | None:
        record = self._one(self._get_lease, (model,))
        return Lease.model_validate_json(record) if record else None

    # ---- deployments -----------------------------------------------------------------------------------------
    def insert_deployment(self, deployment: Deployment) -> None:
        """Through Paxos like every later status change: mixing a plain write with LWTs on one row can order the
        plain write after them (client vs ballot timestamps) and lose the LWT's update."""
        d = deployment
        record = d.model_dump_json()
        insert = self._insert_deployment.bind((d.model, d.deployment_id, d.status.value, record))
        self._lwt(insert, lambda: self._one(self._get_deployment, (d.model, d.deployment_id), serial=True) == record)

    def update_deployment(self, deployment: Deployment, expected: DeploymentStatus) -> bool:
        d = deployment
        record = d.model_dump_json()
        update = self._update_deployment.bind((d.status.value, record, d.model, d.deployment_id, expected.value))
        key = (d.model, d.deployment_id)
        return self._lwt(update, lambda: self._one(self._get_deployment, key, serial=True) == record)

    def deployments(self, model: str, limit: int = 100) -> list[Deployment]:
        return [
            Deployment.model_validate_json(r.record) for r in self._session.execute(self._deployments, (model, limit))
        ]

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def drop(self) -> None:
        """Delete the keyspace (tests, benchmarks)."""
        self._session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}")

    def close(self) -> None:
        self._cluster.shutdown()


def _ttl_s(lease: Lease) -> int:
    # Cassandra counts a TTL from the whole second the write lands in, so a row could vanish up to 1 s before
    # expires_at; one more second keeps it until then, and the record's own clock decides the takeover.
    return max(1, math.ceil((lease.expires_at - lease.acquired_at).total_seconds())) + 1
