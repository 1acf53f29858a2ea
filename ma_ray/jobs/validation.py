"""Checks of a job spec against the world, before anything is submitted: the job controller's first step.

`validate_job` collects every problem (not just the first) and raises ``SpecError`` with all of them:

- framework: a trainer exists for it (``ma_ray.training.trainers.FRAMEWORKS``);
- features: each ``@palette`` ref is registered in the catalog (the meta store the settings name), every
  transform type-checks against the catalog's types;
- data: each stored feature group the job reads (derived features resolved to what they are computed from) has
  an offline snapshot for the job's window; the label dataset exists and its expressions type-check;
- resources: the job's minimum shape fits some registered cluster (the scheduler's own admission test).

On success it returns what the later steps need: the resolved snapshots (the lineage Gallery records) and the
scheduler request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.dataset as ds

from ma_ray.config import Settings
from ma_ray.jobs.clusters import ClusterRegistry
from ma_ray.jobs.scheduler import ImpossibleJobError, JobRequest, TieredScheduler
from ma_ray.jobs.spec import SpecError, TrainingJobSpec
from ma_ray.palette import BASIS_PREFIX, FeatureRef, FeatureRepository, FeatureType
from ma_ray.storage import filesystem_and_path

DEFAULT_HEADROOM = 0.10


@dataclass(frozen=True)
class ValidatedJob:
    """A spec that passed every check, with its snapshots resolved: ``snapshots`` maps ``catalog.group`` to
    the snapshot dates the job's window can read; ``training_snapshot`` names them for Gallery lineage."""

    spec: TrainingJobSpec
    snapshots: dict[str, tuple[date, ...]]

    @property
    def training_snapshot(self) -> str:
        return ",".join(f"{group}:{dates[0]}..{dates[-1]}" for group, dates in sorted(self.snapshots.items()))


def job_request(job_id: str, spec: TrainingJobSpec) -> JobRequest:
    """What the tiered scheduler needs to queue and place the job."""
    resources = spec.resources
    return JobRequest(
        job_id=job_id,
        tier=spec.tier,
        worker=resources.worker,
        max_workers=resources.workers,
        min_workers=resources.min_workers,
        data_location=spec.cluster.location,
    )


def validate_job(
    spec: TrainingJobSpec, settings: Settings, clusters: ClusterRegistry, headroom: float = DEFAULT_HEADROOM
) -> ValidatedJob:
    """Every check in the module docstring; ``SpecError`` lists all problems found."""
    reasons = _framework_problems(spec) + _resource_problems(spec, clusters, headroom)
    repos, catalog_problems = _repositories(spec, settings)
    reasons += catalog_problems
    snapshots: dict[str, tuple[date, ...]] = {}
    if not catalog_problems:
        reasons += _transform_problems(spec, repos)
        snapshots, snapshot_problems = _snapshots(spec, settings, repos)
        reasons += snapshot_problems
    reasons += _label_problems(spec)
    if reasons:
        raise SpecError(reasons)
    return ValidatedJob(spec, snapshots)


def _framework_problems(spec: TrainingJobSpec) -> list[str]:
    from ma_ray.training.trainers import FRAMEWORKS

    if spec.trainer_framework not in FRAMEWORKS:
        return [f"framework {spec.framework!r} has no trainer here (available: {', '.join(sorted(FRAMEWORKS))})"]
    return []


def _resource_problems(spec: TrainingJobSpec, clusters: ClusterRegistry, headroom: float) -> list[str]:
    if not len(clusters):
        return ["no clusters are registered: pass a clusters file (see clusters/jobs/clusters.yaml)"]
    try:
        TieredScheduler(clusters, headroom=headroom).submit(job_request("admission-check", spec))
    except ImpossibleJobError as error:
        shapes = ", ".join(f"{c.name}: {c.capacity}" for c in clusters)
        return [f"resources: {str(error).replace('admission-check', spec.name)} ({shapes}); ask for fewer or "
                "smaller workers"]  # fmt: skip
    return []


def _repositories(spec: TrainingJobSpec, settings: Settings) -> tuple[dict[str, FeatureRepository], list[str]]:
    from ma_ray.palette import FeatureRegistry
    from ma_ray.palette.meta_store import open_meta_store

    catalogs = sorted({FeatureRef.parse(ref).catalog for ref in spec.features if not ref.startswith(BASIS_PREFIX)})
    repos: dict[str, FeatureRepository] = {}
    problems: list[str] = []
    if len(catalogs) > 1:
        problems.append(f"features come from catalogs {', '.join(catalogs)}: a job reads one catalog")
    store = open_meta_store(settings)
    try:
        registry = FeatureRegistry(store)
        known_catalogs = registry.catalogs()
        for catalog in catalogs:
            if catalog not in known_catalogs:
                problems.append(f"catalog {catalog!r} is not registered: run `ma-ray apply <repository>` first")
            else:
                repos[catalog] = registry.repository(catalog)
    finally:
        store.close()
    for ref in spec.features:
        if ref.startswith(BASIS_PREFIX) or FeatureRef.parse(ref).catalog not in repos:
            continue
        if ref not in repos[FeatureRef.parse(ref).catalog].refs():
            problems.append(f"unknown feature {ref}: {_suggest(ref, repos[FeatureRef.parse(ref).catalog])}")
    return repos, problems


def _suggest(ref: str, repo: FeatureRepository) -> str:
    parsed = FeatureRef.parse(ref)
    group = next((g for g in repo.groups if g.name == parsed.group), None)
    if group is None:
        return (
            f"catalog {repo.catalog!r} has no group {parsed.group!r} (groups: {', '.join(g.name for g in repo.groups)})"
        )
    names = ", ".join(f.name for f in group.features)
    return f"group {parsed.group!r} has no feature {parsed.feature!r} (features: {names})"


def _types(repos: Iterable[FeatureRepository]) -> dict[str, FeatureType]:
    return {ref: feature.type for repo in repos for ref, (_, feature) in repo.refs().items()}


def _transform_problems(spec: TrainingJobSpec, repos: dict[str, FeatureRepository]) -> list[str]:
    from ma_ray.palette.dsl import DslError, compile_expression

    types = _types(repos.values())
    problems = []
    for name, source in spec.transforms.items():
        try:
            compile_expression(source, types)
        except DslError as error:
            problems.append(f"transform {name!r}: {error}")
    return problems


def stored_groups(spec: TrainingJobSpec, repos: dict[str, FeatureRepository]) -> set[tuple[str, str]]:
    """(catalog, group) of every stored feature the job reads, derived features resolved to their inputs."""
    from ma_ray.palette.dsl import compile_expression

    types = _types(repos.values())
    pending = list(spec.features) + [
        r for s in spec.transforms.values() for r in compile_expression(s, types).references
    ]
    seen: set[str] = set()
    groups: set[tuple[str, str]] = set()
    while pending:
        ref = pending.pop()
        if ref.startswith(BASIS_PREFIX) or ref in seen:
            continue
        seen.add(ref)
        parsed = FeatureRef.parse(ref)
        _, feature = repos[parsed.catalog].refs()[ref]
        if feature.expression:
            pending.extend(compile_expression(feature.expression, types).references)
        else:
            groups.add((parsed.catalog, parsed.group))
    return groups


def _snapshots(
    spec: TrainingJobSpec, settings: Settings, repos: dict[str, FeatureRepository]
) -> tuple[dict[str, tuple[date, ...]], list[str]]:
    from ma_ray.palette.offline import OfflineStore

    offline = OfflineStore(settings.offline_uri)
    end = spec.data.bounds()[1]
    found: dict[str, tuple[date, ...]] = {}
    problems: list[str] = []
    for catalog, group in sorted(stored_groups(spec, repos)):
        dates = tuple(info.snapshot_date for info in offline.snapshots(catalog, group))
        name = f"{catalog}.{group}"
        usable = dates if spec.data.snapshot is None else tuple(d for d in dates if d == spec.data.snapshot)
        usable = tuple(d for d in usable if d < end.date())
        if usable:
            found[name] = usable
            continue
        wanted = f"dated {spec.data.snapshot}" if spec.data.snapshot else f"before {end:%Y-%m-%d}"
        have = ", ".join(str(d) for d in dates) or "none"
        problems.append(
            f"missing snapshot: no offline snapshot of {name} {wanted} (have: {have}); run its batch pipeline "
            "for that date or change data:"
        )
    return found, problems


def label_types(schema: pa.Schema) -> dict[str, FeatureType]:
    """``@basis:<column>`` -> DSL type for each column of the label dataset the DSL can read."""
    types: dict[str, FeatureType] = {}
    for field in schema:
        kind = _dsl_type(field.type)
        if kind is not None:
            types[BASIS_PREFIX + field.name] = kind
    return types


def _dsl_type(kind: pa.DataType) -> FeatureType | None:
    if pa.types.is_integer(kind):
        return FeatureType.INT
    if pa.types.is_floating(kind):
        return FeatureType.FLOAT
    if pa.types.is_boolean(kind):
        return FeatureType.BOOL
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return FeatureType.STRING
    if pa.types.is_timestamp(kind):
        return FeatureType.TIMESTAMP
    return None


def open_labels(spec: TrainingJobSpec) -> ds.Dataset:
    """The label source as a dataset (hive partitions, such as ``date=...`` folders, become columns)."""
    fs, root = filesystem_and_path(spec.label.uri)
    return ds.dataset(f"{root}/{spec.label.table}", filesystem=fs, format="parquet", partitioning="hive")


def _label_problems(spec: TrainingJobSpec) -> list[str]:
    from ma_ray.palette.dsl import DslError, compile_expression

    label = spec.label
    try:
        schema = open_labels(spec).schema
    except (OSError, ValueError, pa.ArrowException) as error:
        return [f"label: cannot open {label.uri}/{label.table}: {error}"]
    missing = [c for c in (label.timestamp, *label.columns.values(), label.text) if c and c not in schema.names]
    problems = [f"label: {label.table} has no column {c!r} (columns: {', '.join(schema.names)})" for c in missing]
    types = label_types(schema)
    for key in ("value", "where"):
        source = getattr(label, key)
        if source is None:
            continue
        try:
            compiled = compile_expression(source, types)
        except DslError as error:
            problems.append(f"label.{key}: {error}")
            continue
        wanted = (FeatureType.BOOL,) if key == "where" else (FeatureType.INT, FeatureType.FLOAT, FeatureType.BOOL)
        if compiled.output_type not in wanted:
            problems.append(f"label.{key} is {compiled.output_type}, it must be {' or '.join(wanted)}")
    return problems
