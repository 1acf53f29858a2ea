"""Gallery's records, as pydantic models (the boundary: API, CLI, HTTP, stores all pass these).

A model is a name with an owner, a tier and a framework; a version is an immutable record of one trained
artifact (where it is, its checksum, what it reads, how it was trained, how it scored). Alias events,
leases and deployments are the mutable side, each change recorded rather than overwritten.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ma_ray.gallery.names import NAME_PATTERN
from ma_ray.palette import BASIS_PREFIX, check_input_refs

JsonScalar = str | int | float | bool | None
Tags = dict[Annotated[str, Field(min_length=1, max_length=128)], Annotated[str, Field(max_length=1024)]]
SHA256_PATTERN = r"^sha256:[0-9a-f]{64}$"


def utc_now() -> datetime:
    """Now, in UTC, at millisecond precision (what Cassandra's timestamp keeps), so records round-trip equal."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Framework(StrEnum):
    XGBOOST = "xgboost"
    PYTORCH = "pytorch"
    DEEPSPEED = "deepspeed"
    OTHER = "other"


class ModelSpec(_Record):
    """What a user registers."""

    name: str = Field(pattern=NAME_PATTERN)
    owner: str = Field(min_length=1, max_length=128)
    tier: int = Field(ge=1, le=4, description="1 = most critical (seed's tiers)")
    framework: Framework
    description: str = ""
    tags: Tags = {}


class RegisteredModel(ModelSpec):
    created_at: datetime
    created_by: str


class InputSignature(_Record):
    """What a model reads: catalog feature refs and request fields, and the DSL transforms applied to them."""

    features: tuple[str, ...] = ()
    transforms: dict[Annotated[str, Field(pattern=NAME_PATTERN)], str] = {}

    @field_validator("features")
    @classmethod
    def _refs(cls, refs: tuple[str, ...]) -> tuple[str, ...]:
        return check_input_refs(refs)

    @field_validator("transforms")
    @classmethod
    def _parse(cls, transforms: dict[str, str]) -> dict[str, str]:
        from ma_ray.palette.dsl import check_transforms

        return check_transforms(transforms)

    @property
    def palette_refs(self) -> list[str]:
        return [ref for ref in self.features if not ref.startswith(BASIS_PREFIX)]


class VersionSpec(_Record):
    """A new version: its artifact (already published, see ArtifactStore) and how it came to be."""

    artifact_uri: str = Field(min_length=1)
    checksum: str = Field(pattern=SHA256_PATTERN)
    size_bytes: int = Field(ge=0)
    flavor: Framework
    signature: InputSignature = InputSignature()
    params: dict[str, JsonScalar] = {}
    metrics: dict[str, float] = {}
    training_job_id: str | None = None
    training_snapshot: str | None = None
    description: str = ""
    tags: Tags = {}


class ModelVersion(VersionSpec):
    """A registered version: immutable."""

    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    created_at: datetime
    created_by: str

    @property
    def model_id(self) -> str:
        """The multiplexed model id of the serving contract: ``<model>:<version>``."""
        return f"{self.model}:{self.version}"


class AliasEvent(_Record):
    """One change of an alias: who moved it, when, from which version to which (None: unset)."""

    event_id: str
    model: str
    alias: str
    seq: int = Field(ge=1)
    from_version: int | None
    to_version: int | None
    at: datetime
    by: str
    reason: str = ""


class AliasState(_Record):
    """Where an alias points now, and the sequence number of the change that put it there."""

    version: int | None
    seq: int


class Lease(_Record):
    """A deployment lock held by ``holder`` until ``expires_at`` (unless released or renewed)."""

    model: str
    holder: str
    token: str
    acquired_at: datetime
    expires_at: datetime

    def remaining_s(self, now: datetime | None = None) -> float:
        return (self.expires_at - (now or datetime.now(UTC))).total_seconds()


class DeploymentStatus(StrEnum):
    PENDING = "pending"
    LOADING = "loading"
    LIVE = "live"
    ROLLED_BACK = "rolled_back"


# The only moves a deployment record may make: all-or-nothing, never back.
TRANSITIONS: dict[DeploymentStatus, frozenset[DeploymentStatus]] = {
    DeploymentStatus.PENDING: frozenset({DeploymentStatus.LOADING, DeploymentStatus.ROLLED_BACK}),
    DeploymentStatus.LOADING: frozenset({DeploymentStatus.LIVE, DeploymentStatus.ROLLED_BACK}),
    DeploymentStatus.LIVE: frozenset(),
    DeploymentStatus.ROLLED_BACK: frozenset(),
}


class Deployment(_Record):
    model: str
    deployment_id: str  # sortable: d<epoch microseconds, 17 digits>-<random>
    version: int
    alias: str | None = None
    previous_version: int | None = None
    status: DeploymentStatus
    deployer: str
    created_at: datetime
    updated_at: datetime
    reason: str = ""
