"""Gallery, the model registry: models, immutable versions with verified artifacts, lineage, atomic aliases
with history and rollback, alias-change broadcast, and per-model deployment locks.

    gallery = Gallery.from_settings(load_settings(), lineage=PaletteLineage(feature_registry))
    gallery.register_model(name="eta", owner="maps", tier=1, framework="xgboost")
    v = gallery.log_model("eta", booster, signature=InputSignature(features=(...)), metrics={"rmse": 3.1})
    gallery.set_alias("eta", "production", v.version, expected=None)
    gallery.resolve("eta", "production"); gallery.rollback("eta", "production")

Model flavors (`ma_ray.gallery.flavors`) and stores (`ma_ray.gallery.store`) have surfaces of their own; the
`ma-ray gallery` commands are in `ma_ray.gallery.cli`.
"""

from ma_ray.gallery.admin import admin_refusal, error_status
from ma_ray.gallery.artifacts import MANIFEST, ArtifactStore, Manifest, PublishedArtifact
from ma_ray.gallery.broadcast import AliasBus, AliasChange, InProcessAliasBus, Propagation, RedisAliasBus
from ma_ray.gallery.bus_factory import open_alias_bus
from ma_ray.gallery.cache import AliasCache
from ma_ray.gallery.deployments import Deployer, DeploymentLock
from ma_ray.gallery.errors import (
    AliasConflictError,
    ChecksumMismatchError,
    CorruptArtifactError,
    DeploymentFailedError,
    DeploymentInProgressError,
    GalleryError,
    LeaseLostError,
    ModelExistsError,
    NothingToRollBackError,
    PropagationTimeoutError,
    UnknownAliasError,
    UnknownModelError,
    UnknownVersionError,
    UnsafeFactoryError,
)
from ma_ray.gallery.lineage import LineageSink, PaletteLineage
from ma_ray.gallery.models import (
    AliasEvent,
    Deployment,
    DeploymentStatus,
    Framework,
    InputSignature,
    ModelSpec,
    ModelVersion,
    RegisteredModel,
    VersionSpec,
)
from ma_ray.gallery.names import NAME_PATTERN
from ma_ray.gallery.registry import ANY, Gallery
from ma_ray.gallery.store import GalleryStore, open_gallery_store

__all__ = [
    "ANY",
    "MANIFEST",
    "NAME_PATTERN",
    "AliasBus",
    "AliasCache",
    "AliasChange",
    "AliasConflictError",
    "AliasEvent",
    "ArtifactStore",
    "ChecksumMismatchError",
    "CorruptArtifactError",
    "Deployer",
    "Deployment",
    "DeploymentFailedError",
    "DeploymentInProgressError",
    "DeploymentLock",
    "DeploymentStatus",
    "Framework",
    "Gallery",
    "GalleryError",
    "GalleryStore",
    "InProcessAliasBus",
    "InputSignature",
    "LeaseLostError",
    "LineageSink",
    "Manifest",
    "ModelExistsError",
    "ModelSpec",
    "ModelVersion",
    "NothingToRollBackError",
    "PaletteLineage",
    "Propagation",
    "PropagationTimeoutError",
    "PublishedArtifact",
    "RedisAliasBus",
    "RegisteredModel",
    "UnknownAliasError",
    "UnknownModelError",
    "UnknownVersionError",
    "UnsafeFactoryError",
    "VersionSpec",
    "admin_refusal",
    "error_status",
    "open_alias_bus",
    "open_gallery_store",
]
