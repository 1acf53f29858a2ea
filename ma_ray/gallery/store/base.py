"""The Gallery store protocol: rows in, rows out. Every check-then-write is one atomic step of the backend
(a SQLite transaction, a Cassandra lightweight transaction), so the logic above it is race-free."""

from __future__ import annotations

from typing import Protocol

from ma_ray.gallery.models import (
    AliasEvent,
    AliasState,
    Deployment,
    DeploymentStatus,
    Lease,
    ModelVersion,
    RegisteredModel,
)


class GalleryStore(Protocol):
    def create_model(self, model: RegisteredModel) -> bool:
        """Insert a model; False (nothing written) when the name is taken."""

    def get_model(self, name: str) -> RegisteredModel | None: ...

    def list_models(self) -> list[RegisteredModel]:
        """Every model, by name."""

    def latest_version(self, model: str) -> int:
        """The highest registered version number, 0 when there is none."""

    def insert_version(self, version: ModelVersion) -> bool:
        """Insert a version; False (nothing written) when that number is taken."""

    def get_version(self, model: str, version: int) -> ModelVersion | None: ...

    def list_versions(self, model: str) -> list[ModelVersion]:
        """Every version, oldest first."""

    def alias_state(self, model: str, alias: str) -> AliasState | None:
        """Where the alias points (None when it was never set)."""

    def cas_alias(self, event: AliasEvent, expected: AliasState | None) -> bool:
        """Atomically: if the alias is still ``expected`` (None: never set), point it at ``event.to_version``
        and append ``event`` (whose seq is expected.seq + 1) to its history. False, nothing written, if not."""

    def aliases(self, model: str) -> dict[str, AliasState]:
        """Every alias of a model that was ever set."""

    def alias_history(self, model: str, alias: str) -> list[AliasEvent]:
        """Every change of an alias, oldest first."""

    def try_acquire_lease(self, lease: Lease) -> Lease | None:
        """Take the model's deployment lock unless an unexpired lease holds it: None when taken, else the
        lease that holds it."""

    def renew_lease(self, lease: Lease) -> bool:
        """Extend a lease to ``lease.expires_at`` if its token still holds the lock."""

    def release_lease(self, model: str, token: str) -> bool:
        """Drop the lock if ``token`` still holds it."""

    def current_lease(self, model: str) -> Lease | None: ...

    def insert_deployment(self, deployment: Deployment) -> None: ...

    def update_deployment(self, deployment: Deployment, expected: DeploymentStatus) -> bool:
        """Replace a deployment record if its status is still ``expected``."""

    def deployments(self, model: str, limit: int = 100) -> list[Deployment]:
        """Newest first."""

    def close(self) -> None: ...
