"""Connecting to Ray the way settings say: a local `ray.init()` sized for a laptop, or a cluster address."""

from __future__ import annotations

import os
from typing import Any

from ma_ray.config import Settings


def ray_init_kwargs(settings: Settings) -> dict[str, Any]:
    """Arguments for `ray.init`: a cluster when `ray_address` is set, or when Ray runs this process as a job
    (`ray job submit` sets `RAY_ADDRESS` to the cluster's GCS address) or names a job API (`http://head:8265`:
    then the cluster this machine runs), else a small local Ray."""
    joined = os.environ.get("RAY_ADDRESS", "")
    if _names_job_api(joined):  # the cluster whose job API it names is the one this machine runs
        joined = "auto"
    if settings.ray_address or joined:
        return {"address": settings.ray_address or joined, "ignore_reinit_error": True}
    return {
        "num_cpus": settings.ray_num_cpus,
        "object_store_memory": settings.ray_object_store_mb * 1024 * 1024,
        # The dashboard is also the job server: the job controller submits training through it.
        "include_dashboard": settings.ray_dashboard,
        "ignore_reinit_error": True,
        "log_to_driver": False,
    }


def init_ray(settings: Settings) -> None:
    """Start or join Ray once per process."""
    import ray

    if ray.is_initialized():
        return
    kwargs = ray_init_kwargs(settings)
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
