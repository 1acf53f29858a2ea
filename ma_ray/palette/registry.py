"""The feature registry: applies a feature repository (validate, version, record lineage) and answers reads.

`apply` is all-or-nothing: every group is checked (DSL types, BACKWARD compatibility against what depends on
it) before anything is written, so a refused change leaves the catalog as it was.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ma_ray.config import Settings
from ma_ray.palette.catalog import (
    Feature,
    FeatureGroup,
    FeatureRef,
    FeatureRepository,
    SourceKind,
    UnknownFeatureError,
)
from ma_ray.palette.compatibility import Incompatibility, check_backward
from ma_ray.palette.dsl import DslError, compile_expression
from ma_ray.palette.lineage import Direction, Edge, LineageTree, group_node, model_node, raw_node, snapshot_node, walk
from ma_ray.palette.meta_store import GroupVersion, MetaStore, open_meta_store
from ma_ray.palette.types import FeatureType

# Nodes outside any feature repository: what a change must never break silently.
_EXTERNAL_PREFIXES = ("model:", "snapshot:")


class IncompatibleChangeError(ValueError):
    """`apply` refused: each problem names the feature, the reason and who depends on it."""

    def __init__(self, problems: list[Incompatibility]) -> None:
        self.problems = problems
        super().__init__("refused, nothing was written:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass
class ApplyReport:
    catalog: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    lineage_edges: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class FeatureRow:
    ref: str
    group: str
    version: int
    type: str
    source: str
    tier: int
    ttl_s: int
    owner: str
    derived: bool
    description: str


class FeatureRegistry:
    """Catalog, schema registry and lineage tracker over one meta store."""

    def __init__(self, store: MetaStore, user: str | None = None) -> None:
        self.store = store
        self.user = user or getpass.getuser()

    # ---- apply -------------------------------------------------------------------------------------------
    def apply(self, repo: FeatureRepository, dry_run: bool = False) -> ApplyReport:
        """Validate and register a repository. Raises IncompatibleChangeError (nothing written) when refused."""
        types = _repo_types(repo)
        problems = self._check_expressions(repo, types)
        uses = _derived_uses(repo, types)
        changes: list[tuple[FeatureGroup, int]] = []
        report = ApplyReport(repo.catalog)
        for group in repo.groups:
            latest = self.store.group_version(repo.catalog, group.name)
            if latest is not None and FeatureGroup.model_validate_json(latest.definition) == group:
                report.unchanged.append(group.name)
                continue
            if latest is not None:
                old = FeatureGroup.model_validate_json(latest.definition)
                problems += check_backward(old, group, self._dependents(repo, old, uses))
            changes.append((group, 1 if latest is None else latest.version + 1))
            (report.created if latest is None else report.updated).append(group.name)
        if problems:
            raise IncompatibleChangeError(problems)
        edges = self._edges(repo, uses)
        report.lineage_edges = len(edges)
        if not dry_run:
            self._write(repo, changes, edges)
        return report

    def _check_expressions(self, repo: FeatureRepository, types: dict[str, FeatureType]) -> list[Incompatibility]:
        problems = []
        for group in repo.groups:
            for feature in group.features:
                problem = _check_derived(group, feature, types)
                if problem:
                    problems.append(problem)
        return problems

    def _dependents(
        self, repo: FeatureRepository, old: FeatureGroup, uses: dict[str, frozenset[str]]
    ) -> Callable[[str], list[str]]:
        """What uses a feature of ``old``: registered models and snapshots, and derived features of the new
        repository whose expressions still reference it."""
        derived_users: dict[str, list[str]] = {}
        for derived, used in uses.items():
            for ref in used:
                derived_users.setdefault(ref, []).append(derived)

        def dependents_of(feature_name: str) -> list[str]:
            ref = repo.ref_of(old, old.feature(feature_name))
            external = [n for n in self._downstream_nodes(ref) if n.startswith(_EXTERNAL_PREFIXES)]
            return sorted(set(external + derived_users.get(ref, [])))

        return dependents_of

    def _downstream_nodes(self, node: str) -> set[str]:
        return walk(node, self.store.children).nodes() - {node}

    def _edges(self, repo: FeatureRepository, uses: dict[str, frozenset[str]]) -> list[Edge]:
        edges = []
        for group in repo.groups:
            node = group_node(repo.catalog, group.name)
            if group.raw_source:
                edges.append(Edge(raw_node(group.raw_source), node))
            for feature in group.features:
                ref = repo.ref_of(group, feature)
                edges.append(Edge(node, ref))
                edges.extend(Edge(parent, ref) for parent in sorted(uses.get(ref, ())))
        return edges

    def _write(self, repo: FeatureRepository, changes: list[tuple[FeatureGroup, int]], edges: list[Edge]) -> None:
        now = datetime.now(UTC).replace(microsecond=datetime.now(UTC).microsecond // 1000 * 1000)
        for entity in repo.entities:
            self.store.put_entity(repo.catalog, entity.name, entity.model_dump_json())
        for group, version in changes:
            definition = group.model_dump_json()
            self.store.put_group_version(GroupVersion(repo.catalog, group.name, version, definition, now, self.user))
        self.store.add_edges(edges)

    # ---- reads ---------------------------------------------------------------------------------------------
    def catalogs(self) -> list[str]:
        return self.store.catalogs()

    def group(self, catalog: str, group: str, version: int | None = None) -> tuple[int, FeatureGroup]:
        """A group at a version (latest by default), with its version number."""
        found = self.store.group_version(catalog, group, version)
        if found is None:
            known = ", ".join(self.store.groups(catalog)) or "none"
            at = f" at version {version}" if version is not None else ""
            raise UnknownFeatureError(f"no feature group '{catalog}.{group}'{at} (groups of '{catalog}': {known})")
        return found.version, FeatureGroup.model_validate_json(found.definition)

    def versions(self, catalog: str, group: str) -> list[GroupVersion]:
        return self.store.group_versions(catalog, group)

    def repository(self, catalog: str) -> FeatureRepository:
        """The latest registered state of a catalog, as a repository."""
        from ma_ray.palette.catalog import Entity

        entities = [Entity.model_validate_json(d) for d in self.store.entities(catalog).values()]
        groups = [self.group(catalog, name)[1] for name in self.store.groups(catalog)]
        return FeatureRepository(catalog=catalog, entities=tuple(entities), groups=tuple(groups))

    def features(self, catalog: str | None = None) -> list[FeatureRow]:
        rows: list[FeatureRow] = []
        for name in [catalog] if catalog else self.catalogs():
            repo = self.repository(name)
            for group in repo.groups:
                version = self.group(name, group.name)[0]
                rows.extend(_row(repo, group, feature, version) for feature in group.features)
        return rows

    def types(self, catalog: str) -> dict[str, FeatureType]:
        """ref -> type of every feature and request field of a catalog (the DSL's type environment)."""
        return _repo_types(self.repository(catalog))

    def lineage(self, node: str, direction: Direction) -> LineageTree:
        neighbours = self.store.parents if direction is Direction.UPSTREAM else self.store.children
        return walk(node, neighbours)

    # ---- lineage from other subsystems (training snapshots, Gallery models) --------------------------------
    def register_snapshot(self, snapshot_id: str, feature_refs: list[str]) -> None:
        self._require_refs(feature_refs)
        self.store.add_edges([Edge(ref, snapshot_node(snapshot_id)) for ref in feature_refs])

    def register_model(self, model: str, version: int, feature_refs: list[str], snapshot_id: str | None = None) -> None:
        """Record that a model version uses these features (and was trained on this snapshot)."""
        self._require_refs(feature_refs)
        node = model_node(model, version)
        edges = [Edge(ref, node) for ref in feature_refs]
        if snapshot_id:
            edges.append(Edge(snapshot_node(snapshot_id), node))
        self.store.add_edges(edges)

    def _require_refs(self, refs: list[str]) -> None:
        for ref in refs:
            if ref.startswith("@basis:"):
                continue
            parsed = FeatureRef.parse(ref)
            _, group = self.group(parsed.catalog, parsed.group)
            try:
                group.feature(parsed.feature)
            except KeyError as error:
                raise UnknownFeatureError(str(error.args[0])) from None


def registered_repository(settings: Settings, catalog: str) -> FeatureRepository:
    """The latest registered state of ``catalog`` in the meta store the settings name."""
    store = open_meta_store(settings)
    try:
        registry = FeatureRegistry(store)
        if catalog not in registry.catalogs():
            raise UnknownFeatureError(
                f"catalog '{catalog}' is not registered in the {settings.meta_store.type} meta store: "
                "run `ma-ray apply <repository>` first"
            )
        return registry.repository(catalog)
    finally:
        store.close()


def _derived_uses(repo: FeatureRepository, types: dict[str, FeatureType]) -> dict[str, frozenset[str]]:
    """derived feature ref -> the refs its expression reads (expressions that do not compile are left out:
    `_check_expressions` reports them)."""
    uses = {}
    for group in repo.groups:
        for feature in group.features:
            if feature.expression:
                try:
                    uses[repo.ref_of(group, feature)] = compile_expression(feature.expression, types).references
                except DslError:
                    continue
    return uses


def _repo_types(repo: FeatureRepository) -> dict[str, FeatureType]:
    return {ref: feature.type for ref, (_, feature) in repo.refs().items()}


def _check_derived(group: FeatureGroup, feature: Feature, types: dict[str, FeatureType]) -> Incompatibility | None:
    if not feature.expression:
        return None
    try:
        compiled = compile_expression(feature.expression, types)
    except DslError as error:
        return Incompatibility(group.name, feature.name, f"expression refused: {error}")
    declared, actual = feature.type, compiled.output_type
    if declared != actual and not (declared is FeatureType.FLOAT and actual is FeatureType.INT):
        return Incompatibility(group.name, feature.name, f"expression gives {actual}, feature is declared {declared}")
    return None


def _row(repo: FeatureRepository, group: FeatureGroup, feature: Feature, version: int) -> FeatureRow:
    return FeatureRow(
        ref=repo.ref_of(group, feature),
        group=group.name,
        version=version,
        type=str(feature.type),
        source=str(group.source),
        tier=group.tier,
        ttl_s=group.ttl_s,
        owner=group.owner,
        derived=feature.expression is not None,
        description=feature.description,
    )


__all__ = [
    "ApplyReport",
    "FeatureRegistry",
    "FeatureRow",
    "IncompatibleChangeError",
    "SourceKind",
    "UnknownFeatureError",
    "registered_repository",
]
