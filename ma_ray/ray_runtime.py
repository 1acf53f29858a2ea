"""Connecting to Ray the way settings say: a local `ray.init()` sized for a laptop, or a cluster address."""

from __future__ import annotations

from typing import Any

from ma_ray.config import Settings


def ray_init_kwargs(settings: Settings) -> dict[str, Any]:
    """Arguments for `ray.init`: a cluster when `ray_address` is set, else a small local Ray."""
    if settings.ray_address:
        return {"address": settings.ray_address, "ignore_reinit_error": True}
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

    if not ray.is_initialized():
        ray.init(**ray_init_kwargs(settings))
