"""The production meta store on Cassandra: one table per query, versions inserted with a lightweight
transaction so two concurrent `apply`s can never register the same version twice."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from cassandra.concurrent import execute_concurrent_with_args

from ma_ray.config import Settings
from ma_ray.connections import open_keyspace
from ma_ray.palette.lineage import Edge
from ma_ray.palette.meta_store.base import GroupVersion, VersionConflictError

_TABLES = [
    "CREATE TABLE IF NOT EXISTS {ks}.entities (catalog text, name text, definition text, "
    "PRIMARY KEY ((catalog), name))",
    "CREATE TABLE IF NOT EXISTS {ks}.group_versions (catalog text, group_name text, version int, definition text, "
    "applied_at timestamp, applied_by text, PRIMARY KEY ((catalog, group_name), version)) "
    "WITH CLUSTERING ORDER BY (version DESC)",
    "CREATE TABLE IF NOT EXISTS {ks}.groups_by_catalog (catalog text, group_name text, "
    "PRIMARY KEY ((catalog), group_name))",
    "CREATE TABLE IF NOT EXISTS {ks}.catalogs (bucket int, catalog text, PRIMARY KEY ((bucket), catalog))",
    "CREATE TABLE IF NOT EXISTS {ks}.lineage_children (parent text, child text, PRIMARY KEY ((parent), child))",
    "CREATE TABLE IF NOT EXISTS {ks}.lineage_parents (child text, parent text, PRIMARY KEY ((child), parent))",
]


class CassandraMetaStore:
    @classmethod
    def from_settings(cls, settings: Settings) -> CassandraMetaStore:
        return cls(settings)

    def __init__(self, settings: Settings, keyspace: str | None = None) -> None:
        self.keyspace = keyspace or f"{settings.cassandra.keyspace}_meta"
        self._cluster, self._session = open_keyspace(settings, self.keyspace, _TABLES)
        self._prepare()

    def _prepare(self) -> None:
        ks, prepare = self.keyspace, self._session.prepare
        self._put_entity = prepare(f"INSERT INTO {ks}.entities (catalog, name, definition) VALUES (?, ?, ?)")
        self._entities = prepare(f"SELECT name, definition FROM {ks}.entities WHERE catalog = ?")
        self._insert_version = prepare(
            f"INSERT INTO {ks}.group_versions (catalog, group_name, version, definition, applied_at, applied_by) "
            "VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS"
        )
        self._latest = prepare(f"SELECT * FROM {ks}.group_versions WHERE catalog = ? AND group_name = ? LIMIT 1")
        self._at = prepare(f"SELECT * FROM {ks}.group_versions WHERE catalog = ? AND group_name = ? AND version = ?")
        self._all_versions = prepare(f"SELECT * FROM {ks}.group_versions WHERE catalog = ? AND group_name = ?")
        self._add_group = prepare(f"INSERT INTO {ks}.groups_by_catalog (catalog, group_name) VALUES (?, ?)")
        self._groups = prepare(f"SELECT group_name FROM {ks}.groups_by_catalog WHERE catalog = ?")
        self._add_catalog = prepare(f"INSERT INTO {ks}.catalogs (bucket, catalog) VALUES (0, ?)")
        self._catalogs = prepare(f"SELECT catalog FROM {ks}.catalogs WHERE bucket = 0")
        self._add_child = prepare(f"INSERT INTO {ks}.lineage_children (parent, child) VALUES (?, ?)")
        self._add_parent = prepare(f"INSERT INTO {ks}.lineage_parents (child, parent) VALUES (?, ?)")
        self._children = prepare(f"SELECT child FROM {ks}.lineage_children WHERE parent = ?")
        self._parents = prepare(f"SELECT parent FROM {ks}.lineage_parents WHERE child = ?")

    def put_entity(self, catalog: str, name: str, definition: str) -> None:
        self._session.execute(self._put_entity, (catalog, name, definition))
        self._session.execute(self._add_catalog, (catalog,))

    def entities(self, catalog: str) -> dict[str, str]:
        return {row.name: row.definition for row in self._session.execute(self._entities, (catalog,))}

    def put_group_version(self, version: GroupVersion) -> None:
        row = (
            version.catalog,
            version.group,
            version.version,
            version.definition,
            version.applied_at,
            version.applied_by,
        )
        if not self._session.execute(self._insert_version, row).was_applied:
            raise VersionConflictError(
                f"version {version.version} of {version.catalog}.{version.group} was registered by another writer"
            )
        self._session.execute(self._add_group, (version.catalog, version.group))
        self._session.execute(self._add_catalog, (version.catalog,))

    def group_version(self, catalog: str, group: str, version: int | None = None) -> GroupVersion | None:
        if version is None:
            row = self._session.execute(self._latest, (catalog, group)).one()
        else:
            row = self._session.execute(self._at, (catalog, group, version)).one()
        return _version(row) if row else None

    def group_versions(self, catalog: str, group: str) -> list[GroupVersion]:
        rows = self._session.execute(self._all_versions, (catalog, group))
        return sorted((_version(row) for row in rows), key=lambda v: v.version)

    def groups(self, catalog: str) -> list[str]:
        return sorted(row.group_name for row in self._session.execute(self._groups, (catalog,)))

    def catalogs(self) -> list[str]:
        return sorted(row.catalog for row in self._session.execute(self._catalogs))

    def add_edges(self, edges: list[Edge]) -> None:
        execute_concurrent_with_args(
            self._session, self._add_child, [(e.parent, e.child) for e in edges], raise_on_first_error=True
        )
        execute_concurrent_with_args(
            self._session, self._add_parent, [(e.child, e.parent) for e in edges], raise_on_first_error=True
        )

    def children(self, node: str) -> list[str]:
        return [row.child for row in self._session.execute(self._children, (node,))]

    def parents(self, node: str) -> list[str]:
        return [row.parent for row in self._session.execute(self._parents, (node,))]

    def drop(self) -> None:
        """Delete the keyspace (tests)."""
        self._session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}")

    def close(self) -> None:
        self._cluster.shutdown()


def _version(row: Any) -> GroupVersion:
    applied_at = row.applied_at.replace(tzinfo=UTC)
    return GroupVersion(row.catalog, row.group_name, row.version, row.definition, applied_at, row.applied_by)
