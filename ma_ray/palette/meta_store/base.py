"""The meta store protocol: where catalogs, schema versions and lineage edges persist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ma_ray.palette.lineage import Edge


@dataclass(frozen=True)
class GroupVersion:
    catalog: str
    group: str
    version: int
    definition: str  # the FeatureGroup as JSON
    applied_at: datetime
    applied_by: str


class VersionConflictError(RuntimeError):
    """Another writer registered the same group version first; reload and apply again."""


class MetaStore(Protocol):
    """Small and dumb on purpose: the registry holds the logic, stores only read and write rows."""

    def put_entity(self, catalog: str, name: str, definition: str) -> None: ...

    def entities(self, catalog: str) -> dict[str, str]:
        """name -> definition JSON."""

    def put_group_version(self, version: GroupVersion) -> None:
        """Insert a new version; raises VersionConflictError if that version number exists already."""

    def group_version(self, catalog: str, group: str, version: int | None = None) -> GroupVersion | None:
        """The given version, or the latest when version is None; None if there is none."""

    def group_versions(self, catalog: str, group: str) -> list[GroupVersion]:
        """Every version, oldest first."""

    def groups(self, catalog: str) -> list[str]: ...

    def catalogs(self) -> list[str]: ...

    def add_edges(self, edges: list[Edge]) -> None: ...

    def children(self, node: str) -> list[str]: ...

    def parents(self, node: str) -> list[str]: ...

    def close(self) -> None: ...
