"""Palette, the feature store: the catalog (entities, feature groups, features and their references), the
repository YAML it is declared in, the registry with schema versions and lineage, and loading snapshots into
the online store. Each part below has a surface of its own, imported from its package: `ma_ray.palette.online`
(the online stores and caches), `ma_ray.palette.offline` (Parquet snapshots, the point-in-time join),
`ma_ray.palette.pipelines` (batch pipelines), `ma_ray.palette.streaming` (stream aggregation),
`ma_ray.palette.dsl` (the feature DSL), `ma_ray.palette.meta_store` (where the registry lives);
`ma_ray.palette.cli` holds the `ma-ray feature` commands."""

from ma_ray.palette.catalog import (
    BASIS_PREFIX,
    Entity,
    Feature,
    FeatureGroup,
    FeatureRef,
    FeatureRepository,
    SourceKind,
    UnknownFeatureError,
    check_input_refs,
)
from ma_ray.palette.lineage import Direction, LineageTree
from ma_ray.palette.materialize import load_snapshot
from ma_ray.palette.registry import FeatureRegistry, registered_repository
from ma_ray.palette.repository import RepositoryError, load_repository
from ma_ray.palette.types import FeatureType

__all__ = [
    "BASIS_PREFIX",
    "Direction",
    "Entity",
    "Feature",
    "FeatureGroup",
    "FeatureRef",
    "FeatureRegistry",
    "FeatureRepository",
    "FeatureType",
    "LineageTree",
    "RepositoryError",
    "SourceKind",
    "UnknownFeatureError",
    "check_input_refs",
    "load_repository",
    "load_snapshot",
    "registered_repository",
]
