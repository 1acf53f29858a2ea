"""The prediction application: the tier-1 pool takes HTTP (`apps.prediction.front`) and holds handles to the
other pools; pools are sized by the placement planner from Gallery's models."""

from __future__ import annotations

from typing import Any

from ray import serve

from apps.prediction.front import FrontReplica
from apps.prediction.replica import GpuPoolReplica, PoolReplica
from apps.prediction.schemas import AppArgs
from ma_ray.config import load_settings
from ma_ray.gallery import Gallery
from ma_ray.serving import (
    DEEP_FRAMEWORKS,
    GPU_GROUP,
    LOWER_GROUP,
    POOL_DEPLOYMENTS,
    TIER1_GROUP,
    GroupSize,
    ModelProfile,
    PlacementPlanner,
    group_sizes,
)

# The front takes HTTP and answers its own (tier-1) models, so it has room for more requests than a pool.
ModelPoolTier1 = serve.deployment(FrontReplica, name=POOL_DEPLOYMENTS[TIER1_GROUP], max_ongoing_requests=64)
ModelPool = serve.deployment(PoolReplica, name=POOL_DEPLOYMENTS[LOWER_GROUP], max_ongoing_requests=32)
GpuModelPool = serve.deployment(GpuPoolReplica, name=POOL_DEPLOYMENTS[GPU_GROUP], max_ongoing_requests=32)
BACK_POOLS = {LOWER_GROUP: ModelPool, GPU_GROUP: GpuModelPool}
# Serve runs a replica's code on a second event loop in a thread of its own by default, so every request crosses
# threads and waits on the GIL twice (about 1 ms of a 4 ms prediction, `bench/prediction_http.py`). The pools never
# hold their loop long (loads run in a thread; cache reads are bounded by the feature deadline), so they run on the
# replica's main loop.
REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}


def _profiles(gallery: Gallery, forecast: dict[str, float]) -> list[ModelProfile]:
    """Placement inputs from Gallery metadata: tier, framework, the latest version's size, forecast traffic."""
    profiles = []
    for registered in gallery.models():
        versions = gallery.versions(registered.name)
        size_mb = max(versions[-1].size_bytes, 1) / 1024 / 1024 if versions else 1.0
        deep = str(registered.framework) in DEEP_FRAMEWORKS
        qps = forecast.get(registered.name, 0.0)
        profiles.append(ModelProfile(registered.name, registered.tier, size_mb, qps, deep))
    return profiles


def application(parsed: AppArgs, sizes: dict[str, GroupSize]) -> serve.Application:
    """The app for ``parsed`` with the pools sized ``sizes`` (``serving.replicas`` overrides)."""
    serving = parsed.serving
    args = (parsed.catalog, parsed.settings, serving.model_dump())
    pools = {}
    for group, deployment in BACK_POOLS.items():
        name = POOL_DEPLOYMENTS[group]
        actor = _actor_options(serving.num_cpus_per_replica)
        if group == GPU_GROUP:
            actor["num_gpus"] = serving.gpus_per_replica
        replicas = serving.replicas.get(name, sizes[group].replicas)
        if replicas == 0:
            continue
        pools[name] = deployment.options(num_replicas=replicas, ray_actor_options=actor).bind(group, *args)
    front = POOL_DEPLOYMENTS[TIER1_GROUP]
    replicas = max(serving.replicas.get(front, sizes[TIER1_GROUP].replicas), 1)  # it takes HTTP
    actor = _actor_options(serving.num_cpus_per_replica)
    return ModelPoolTier1.options(num_replicas=replicas, ray_actor_options=actor).bind(TIER1_GROUP, *args, pools)


def _actor_options(num_cpus: float) -> dict[str, Any]:
    return {"num_cpus": num_cpus, "runtime_env": {"env_vars": REPLICA_ENV}}


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve config entry point: ``import_path: apps.prediction:build_app`` with args
    ``{catalog, settings: {<Settings field>: value}, serving: {<ServingOptions field>: value}}``. Pools are
    sized by the placement planner from Gallery's models (``serving.replicas`` or a config file's
    ``deployments`` entries override)."""
    parsed = AppArgs(**args)
    gallery = Gallery.from_settings(load_settings(**(parsed.settings or {})))
    try:
        profiles = _profiles(gallery, parsed.serving.forecast_qps)
    finally:
        gallery.close()
    return application(parsed, group_sizes(PlacementPlanner().plan(profiles)))
