"""Connecting to Ray the way settings say: a local `ray.init()` sized for a laptop, or a cluster address."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ma_ray.config import Settings

# Serve's ingress as ma-ray ships it, read by the processes Ray starts (so set where Ray starts: `ray start`'s
# environment, the pods' `env`, before a local `ray.init`): HAProxy takes HTTP and hands it to the replicas
# directly; a stopping replica stays reachable 2 s (Serve's default, 30 s, is for load balancers that need that
# long to deregister it; HAProxy is reloaded when the replicas change and retries a refused connection elsewhere).
SERVE_INGRESS_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2"}


def ray_init_kwargs(settings: Settings) -> dict[str, Any]:
    """Arguments for `ray.init`: a cluster when `ray_address` is set, or when Ray runs this process as a job
    (`ray job submit` sets `RAY_ADDRESS` to the cluster's GCS address) or names a job API (`http://head:8265`:
    then the cluster this machine runs), else a small local Ray."""
    joined = os.environ.get("RAY_ADDRESS", "")
    if _names_job_api(joined):  # the cluster whose job API it names is the one this machine runs
        joined = "auto"
    if settings.ray.address or joined:
        return {"address": settings.ray.address or joined, "ignore_reinit_error": True}
    return {
        "num_cpus": settings.ray.num_cpus,
        "object_store_memory": settings.ray.object_store_mb * 1024 * 1024,
        # The dashboard is also the job server: the job controller submits training through it.
        "include_dashboard": settings.ray.dashboard,
        "ignore_reinit_error": True,
        "log_to_driver": False,
    }


def init_ray(settings: Settings) -> None:
    """Start or join Ray once per process."""
    import ray

    if ray.is_initialized():
        return
    kwargs = ray_init_kwargs(settings)
    if "address" not in kwargs:  # a Ray of this process's own: Serve's ingress as the README's cluster runs it
        for name, value in SERVE_INGRESS_ENV.items():
            os.environ.setdefault(name, value)
    job_api = os.environ.get("RAY_ADDRESS", "")
    if not _names_job_api(job_api):
        ray.init(**kwargs)
        return
    # `export RAY_ADDRESS=http://head:8265` is for `ray job`; ray.init would read it as a Ray Client address.
    del os.environ["RAY_ADDRESS"]
    try:
        ray.init(**kwargs)
    finally:
        os.environ["RAY_ADDRESS"] = job_api


def _names_job_api(address: str) -> bool:
    return address.startswith(("http://", "https://"))


@dataclass(frozen=True)
class RayDataStatsActor:
    """Ray Data's stats actor is detached, so it outlives the job that made it: a run that made it removes it at
    its end, and leaves one that was there before (another job's) alone."""

    made_by_this_run: bool

    @classmethod
    def before_this_run(cls) -> RayDataStatsActor:
        return cls(made_by_this_run=_ray_data_stats_actor() is None)

    def release(self) -> None:
        import ray

        actor = _ray_data_stats_actor() if self.made_by_this_run and ray.is_initialized() else None
        if actor is not None:
            ray.kill(actor)


def _ray_data_stats_actor() -> Any | None:
    import ray
    from ray.data._internal.stats import STATS_ACTOR_NAME, STATS_ACTOR_NAMESPACE

    try:
        return ray.get_actor(STATS_ACTOR_NAME, namespace=STATS_ACTOR_NAMESPACE)
    except ValueError:
        return None
