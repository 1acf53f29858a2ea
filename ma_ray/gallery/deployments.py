"""Deployments: one at a time per model (a lease-based lock), all-or-nothing (pending -> loading -> live, or
rolled_back with the reason), and a crashed deployer's lease expires so the next one can take over.

The seed's "Race Condition 3": the lock is the distributed lock, the records are what the prediction service
reads to know which version of a model is live.
"""

from __future__ import annotations

import getpass
import secrets
from collections.abc import Callable
from datetime import timedelta

from ma_ray.gallery.errors import DeploymentFailedError, DeploymentInProgressError, GalleryError, LeaseLostError
from ma_ray.gallery.models import TRANSITIONS, Deployment, DeploymentStatus, Lease, ModelVersion, utc_now
from ma_ray.gallery.names import check_model_name
from ma_ray.gallery.registry import ANY, Gallery
from ma_ray.gallery.store import GalleryStore

_OPEN = (DeploymentStatus.PENDING, DeploymentStatus.LOADING)


class DeploymentLock:
    """``with DeploymentLock(store, model, holder):`` holds the model's deployment lock for ``lease_s``."""

    def __init__(self, store: GalleryStore, model: str, holder: str, lease_s: float = 300.0) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.store, self.model, self.holder, self.lease_s = store, check_model_name(model), holder, lease_s
        self.lease: Lease | None = None

    def _new_lease(self, token: str) -> Lease:
        now = utc_now()
        return Lease(
            model=self.model,
            holder=self.holder,
            token=token,
            acquired_at=now,
            expires_at=now + timedelta(seconds=self.lease_s),
        )

    def acquire(self) -> Lease:
        lease = self._new_lease(secrets.token_hex(16))
        held = self.store.try_acquire_lease(lease)
        if held is not None:
            raise DeploymentInProgressError(self.model, held.holder, held.remaining_s(lease.acquired_at))
        self.lease = lease
        return lease

    def renew(self) -> Lease:
        if self.lease is None:
            raise GalleryError("renew() before acquire()")
        renewed = self._new_lease(self.lease.token).model_copy(update={"acquired_at": self.lease.acquired_at})
        if not self.store.renew_lease(renewed):
            raise LeaseLostError(f"the deployment lock of '{self.model}' expired and was taken over; stop deploying")
        self.lease = renewed
        return renewed

    def release(self) -> bool:
        if self.lease is None:
            return False
        released = self.store.release_lease(self.model, self.lease.token)
        self.lease = None
        return released

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


Loader = Callable[[ModelVersion], None]


class Deployer:
    """Deploys a version of a model: takes the lock, records the deployment, runs ``load`` (the serving side
    loading the version everywhere), then moves the alias and marks it live. Any failure marks it
    rolled_back and leaves the alias, and so the serving version, where it was."""

    def __init__(self, gallery: Gallery, lease_s: float = 300.0, user: str | None = None) -> None:
        self.gallery, self.store, self.lease_s = gallery, gallery.store, lease_s
        self.user = user or gallery.user or getpass.getuser()

    def deploy(
        self,
        model: str,
        ref: int | str,
        load: Loader,
        alias: str | None = "production",
        after_flip: Callable[[Deployment], None] | None = None,
    ) -> Deployment:
        """Deploy ``ref`` and point ``alias`` at it. ``after_flip`` runs once it is live, still under the lock
        (the drain: waiting for every reader to drop the old resolution before another deployment may start)."""
        version = self.gallery.version(model, ref)
        lock = DeploymentLock(self.store, model, self.user, self.lease_s)
        with lock:
            self._abandon_open(model)
            previous = self.gallery.alias_state(model, alias) if alias else None
            now = utc_now()
            record = Deployment(
                model=model,
                deployment_id=f"d{int(now.timestamp() * 1e6):017d}-{secrets.token_hex(4)}",
                version=version.version,
                alias=alias,
                previous_version=previous.version if previous else None,
                status=DeploymentStatus.PENDING,
                deployer=self.user,
                created_at=now,
                updated_at=now,
            )
            self.store.insert_deployment(record)
            record = self._move(record, DeploymentStatus.LOADING)
            try:
                load(version)
                lock.renew()  # still ours? (a lease that lapsed during a long load must not go live)
                if alias:
                    expected = previous.version if previous else None
                    self.gallery.set_alias(
                        model, alias, version.version, expected=expected, reason=record.deployment_id
                    )
            except Exception as error:
                self._move(record, DeploymentStatus.ROLLED_BACK, f"{type(error).__name__}: {error}")
                raise DeploymentFailedError(
                    f"deployment of {model}:{version.version} rolled back ({type(error).__name__}: {error}); "
                    f"{alias or 'serving'} stays at version {record.previous_version}"
                ) from error
            live = self._move(record, DeploymentStatus.LIVE)
            if after_flip is not None:
                after_flip(live)
            return live

    def _move(self, record: Deployment, status: DeploymentStatus, reason: str = "") -> Deployment:
        if status not in TRANSITIONS[record.status]:
            raise GalleryError(f"deployment {record.deployment_id}: {record.status} -> {status} is not allowed")
        moved = record.model_copy(update={"status": status, "updated_at": utc_now(), "reason": reason})
        if not self.store.update_deployment(moved, record.status):
            raise LeaseLostError(f"deployment {record.deployment_id} was changed by someone else; stopping")
        return moved

    def _abandon_open(self, model: str) -> None:
        """Deployments left pending/loading by a deployer whose lease expired: they never went live."""
        for record in self.store.deployments(model, limit=20):
            if record.status in _OPEN:
                self._move(record, DeploymentStatus.ROLLED_BACK, "abandoned: its deployer's lease expired")

    def history(self, model: str, limit: int = 100) -> list[Deployment]:
        return self.store.deployments(check_model_name(model), limit)

    def live(self, model: str) -> Deployment | None:
        """The newest live deployment."""
        return next((d for d in self.history(model) if d.status is DeploymentStatus.LIVE), None)


__all__ = ["ANY", "Deployer", "DeploymentLock"]
