"""The deployment flow of a model version (the seed's "Race Condition 3" and "Model loading failure" rows):
take Gallery's deployment lock, shadow-load the version on every replica of its serving pool, flip the alias
atomically, wait until every ingress has dropped the old resolution (the drain), release (all in
`Deployer.deploy`, the drain as its ``after_flip``). A version that fails to load on any replica is rolled
back (the alias never moves, the previous version keeps serving) and alerted: an error log line and the
``ma_ray_model_deploy_failures_total`` counter.

Requests never see a half-deployed model: the alias moves only after every replica holds the new version, and
a request that resolved the old version before the flip still finds it loaded in its pool.

    gallery = Gallery.from_settings(settings)
    rollout = Rollout(gallery, ServePool(gallery, "prediction"))
    report = rollout.deploy("eta", 7)            # -> RolloutReport (live), or DeploymentFailedError
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any, Protocol

from ma_ray.gallery import Deployer, Deployment, DeploymentFailedError, Gallery, ModelVersion
from ma_ray.metrics import Instrument, MetricsBackend, default_backend
from ma_ray.serving.placement import pool_serve_deployment

log = logging.getLogger(__name__)

DEPLOY_FAILURES = "ma_ray_model_deploy_failures_total"
DEPLOYMENTS = "ma_ray_model_deployments_total"
METRIC_NAMES = (DEPLOY_FAILURES, DEPLOYMENTS)


class PreloadError(RuntimeError):
    """A replica could not load the version (bad artifact, out of memory, import error, ...)."""


class ServingPool(Protocol):
    """What a rollout needs from the serving side."""

    def preload(self, model_id: str, timeout_s: float) -> list[dict[str, Any]]:
        """Load ``<model>:<version>`` on every replica of the pool; one report per replica. Raises PreloadError
        when any replica fails or the timeout passes."""


class ServePool:
    """The model pools of a running Ray Serve prediction application: the one place rollouts touch Serve.

    A model's pool is the deployment its tier and framework place it in (``placement.pool_serve_deployment``, unless
    ``deployment`` names one). The load is a broadcast of the pool's ``preload`` method to every live replica,
    under the multiplexed id, so it goes through the same loader and cache that requests use."""

    def __init__(self, gallery: Gallery, app: str = "prediction", deployment: str | None = None) -> None:
        self.gallery, self.app, self.deployment = gallery, app, deployment

    def serve_deployment_of(self, model: str) -> str:
        if self.deployment:
            return self.deployment
        registered = self.gallery.model(model)
        return pool_serve_deployment(registered.tier, registered.framework)

    def preload(self, model_id: str, timeout_s: float) -> list[dict[str, Any]]:
        from ray import serve

        deployment = self.serve_deployment_of(model_id.rpartition(":")[0])
        handle = serve.get_deployment_handle(deployment, self.app)
        try:
            response = handle.options(multiplexed_model_id=model_id).broadcast("preload", model_id)
            return list(response.results(timeout_s=timeout_s))
        except Exception as error:
            # A replica's exception arrives wrapped (RayTaskError, its traceback in the text): report the cause.
            cause = getattr(error, "cause", None) or error
            raise PreloadError(
                f"{model_id} did not load on every replica of {self.app}/{deployment}: "
                f"{type(cause).__name__}: {str(cause).strip()}"
            ) from error


@dataclass(frozen=True)
class RolloutMetrics:
    failures: Instrument
    deployments: Instrument

    @classmethod
    def on(cls, backend: MetricsBackend) -> RolloutMetrics:
        return cls(
            backend.counter(DEPLOY_FAILURES, "Model deployments rolled back because a version failed", ("model",)),
            backend.counter(DEPLOYMENTS, "Model deployments by outcome (live, rolled_back)", ("model", "status")),
        )


@cache
def shared_rollout_metrics() -> RolloutMetrics:
    """One set per process: prometheus-client refuses to register a metric name twice."""
    return RolloutMetrics.on(default_backend())


@dataclass
class RolloutReport:
    """What a deployment did, in the order it did it; ``to_dict`` for JSON."""

    model: str
    version: int
    alias: str | None
    deployment_id: str = ""
    previous_version: int | None = None
    status: str = "pending"
    replicas: list[dict[str, Any]] = field(default_factory=list)
    load_s: float = 0.0
    propagation_s: float = 0.0
    acknowledged: list[str] = field(default_factory=list)
    laggards: list[str] = field(default_factory=list)
    total_s: float = 0.0
    error: str = ""

    @property
    def model_id(self) -> str:
        return f"{self.model}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model_id": self.model_id}


class Rollout:
    """Deploys versions of models served by one pool. ``load_timeout_s`` bounds the shadow load on all
    replicas; ``propagation_timeout_s`` the wait for every ingress to acknowledge the alias change (a late
    acknowledgement does not undo the change: it is reported in ``laggards``)."""

    def __init__(
        self,
        gallery: Gallery,
        pool: ServingPool,
        load_timeout_s: float = 120.0,
        propagation_timeout_s: float = 5.0,
        metrics: RolloutMetrics | None = None,
        user: str | None = None,
    ) -> None:
        self.gallery, self.pool = gallery, pool
        self.deployer = Deployer(gallery, lease_s=max(300.0, load_timeout_s * 2), user=user)
        self.load_timeout_s, self.propagation_timeout_s = load_timeout_s, propagation_timeout_s
        self.metrics = metrics or shared_rollout_metrics()

    def deploy(self, model: str, ref: int | str, alias: str | None = "production") -> RolloutReport:
        """Deploy ``model`` at ``ref`` (a number, "latest" or another alias) and point ``alias`` at it (None:
        only load it). Raises DeploymentFailedError after rolling back, DeploymentInProgressError while
        another deployment of the model holds the lock."""
        started = time.perf_counter()
        version = self.gallery.version(model, ref)
        report = RolloutReport(model, version.version, alias)

        def shadow_load(target: ModelVersion) -> None:
            load_started = time.perf_counter()
            report.replicas = self.pool.preload(f"{target.model}:{target.version}", self.load_timeout_s)
            report.load_s = time.perf_counter() - load_started

        def drain(live: Deployment) -> None:
            report.deployment_id, report.previous_version = live.deployment_id, live.previous_version
            if alias:
                self._await_propagation(report, alias)

        try:
            record = self.deployer.deploy(model, version.version, shadow_load, alias, after_flip=drain)
        except DeploymentFailedError as error:
            report.status, report.error, report.total_s = "rolled_back", str(error), time.perf_counter() - started
            self._alert(report)
            raise
        report.status = record.status.value
        report.total_s = time.perf_counter() - started
        self.metrics.deployments.record(1, {"model": model, "status": report.status})
        log.info(
            "deployed %s as %s (was %s): loaded on %d replica(s) in %.3fs, %d ingress(es) switched in %.3fs",
            report.model_id,
            alias,
            report.previous_version,
            len(report.replicas),
            report.load_s,
            len(report.acknowledged),
            report.propagation_s,
        )
        return report

    def _await_propagation(self, report: RolloutReport, alias: str) -> None:
        """Wait for every subscribed ingress to drop its cached resolution of the alias (the drain: once it
        returns, no new request resolves the previous version)."""
        waited = time.perf_counter()
        history = self.gallery.alias_history(report.model, alias)
        flip = next(e for e in reversed(history) if e.reason == report.deployment_id)
        propagation = self.gallery.wait_for_propagation(flip.event_id, self.propagation_timeout_s)
        report.propagation_s = time.perf_counter() - waited
        report.acknowledged, report.laggards = propagation.acknowledged, propagation.laggards
        if propagation.laggards:
            log.warning(
                "%s is live as %s, but %d ingress(es) did not acknowledge within %.1fs (their cache expires on "
                "its own TTL): %s",
                report.model_id,
                alias,
                len(propagation.laggards),
                self.propagation_timeout_s,
                ", ".join(propagation.laggards),
            )

    def _alert(self, report: RolloutReport) -> None:
        self.metrics.failures.record(1, {"model": report.model})
        self.metrics.deployments.record(1, {"model": report.model, "status": report.status})
        log.error("ALERT deployment of %s failed and was rolled back: %s", report.model_id, report.error)


__all__ = ["PreloadError", "Rollout", "RolloutMetrics", "RolloutReport", "ServePool", "ServingPool"]
