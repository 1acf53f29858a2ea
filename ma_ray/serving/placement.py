"""The placement planner (the seed's "Virtual Model Sharding" placement strategy): which multiplexed pool
serves each model, how many replicas each pool has and how many models each replica may hold.

Rules: tier 1 never shares a pool with lower tiers; deep-learning models go to GPU pools (1-5 per instance);
the others are grouped by memory footprint and request pattern, on large instances (10-50 models, high
memory) or medium ones (5-20); a replica's models fit in 80% of its memory (the seed's model cache size);
replicas follow the forecast traffic, with at least two for tier 1 so one can fail.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ma_ray.serving.frameworks import DEEP_FRAMEWORKS


@dataclass(frozen=True)
class ModelProfile:
    model: str
    tier: int
    memory_mb: float
    forecast_qps: float = 0.0
    deep: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.tier <= 4 or self.memory_mb <= 0 or self.forecast_qps < 0:
            raise ValueError(f"bad profile for {self.model}: tier 1-4, memory_mb > 0 and forecast_qps >= 0")


@dataclass(frozen=True)
class InstanceClass:
    name: str
    memory_mb: float
    min_models: int
    max_models: int
    gpus: int
    qps_per_replica: float


INSTANCE_CLASSES = {
    "large": InstanceClass("large", 64_000, 10, 50, 0, 2_000),
    "medium": InstanceClass("medium", 16_000, 5, 20, 0, 1_000),
    "gpu": InstanceClass("gpu", 48_000, 1, 5, 1, 400),
}


@dataclass
class PoolPlan:
    name: str
    instance: InstanceClass
    models: list[ModelProfile] = field(default_factory=list)
    replicas: int = 1
    slots_per_replica: int = 1

    @property
    def tier1(self) -> bool:
        return self.models[0].tier == 1


class PlacementPlanner:
    def __init__(
        self,
        instances: dict[str, InstanceClass] | None = None,
        cache_fraction: float = 0.8,
        hot_qps: float = 50.0,
        big_model_mb: float = 1_000.0,
    ) -> None:
        self.instances = instances or INSTANCE_CLASSES
        self.cache_fraction = cache_fraction
        self.hot_qps = hot_qps
        self.big_model_mb = big_model_mb

    def plan(self, models: Iterable[ModelProfile]) -> list[PoolPlan]:
        """Pools for every model; raises ValueError for a model no instance class can hold."""
        groups: dict[tuple[str, ...], list[ModelProfile]] = defaultdict(list)
        for profile in models:
            groups[self._group_of(profile)].append(profile)
        pools: list[PoolPlan] = []
        for key, members in sorted(groups.items()):
            pools.extend(self._pools(key, sorted(members, key=lambda m: -m.memory_mb)))
        return pools

    def _group_of(self, profile: ModelProfile) -> tuple[str, ...]:
        tier = "tier1" if profile.tier == 1 else "tier2-4"
        if profile.deep:
            return (tier, "gpu", "any", "any")
        size = "big" if profile.memory_mb >= self.big_model_mb else "small"
        traffic = "hot" if profile.forecast_qps >= self.hot_qps else "cold"
        return (tier, "large" if size == "big" else "medium", size, traffic)

    def _pools(self, key: tuple[str, ...], members: list[ModelProfile]) -> list[PoolPlan]:
        instance = self.instances[key[1]]
        budget = instance.memory_mb * self.cache_fraction
        pools: list[PoolPlan] = []
        current: list[ModelProfile] = []
        for profile in members:  # biggest first: first-fit decreasing into replicas' memory budgets
            if profile.memory_mb > budget:
                raise ValueError(
                    f"{profile.model} needs {profile.memory_mb} MB; a {instance.name} replica offers "
                    f"{budget:.0f} MB for models"
                )
            if current and (len(current) == instance.max_models or _mb(current) + profile.memory_mb > budget):
                pools.append(self._pool(key, len(pools), instance, current))
                current = []
            current.append(profile)
        if current:
            pools.append(self._pool(key, len(pools), instance, current))
        return pools

    def _pool(self, key: tuple[str, ...], index: int, instance: InstanceClass, models: list[ModelProfile]) -> PoolPlan:
        qps = sum(m.forecast_qps for m in models)
        minimum = 2 if models[0].tier == 1 else 1
        replicas = max(minimum, math.ceil(qps / instance.qps_per_replica))
        name = "-".join([*key, str(index)]).replace("-any", "")
        return PoolPlan(name, instance, list(models), replicas, slots_per_replica=len(models))


def _mb(models: list[ModelProfile]) -> float:
    return sum(m.memory_mb for m in models)


# The serving app's pool deployments, one per placement group (a deployment's replicas hold its group's pools).
TIER1_GROUP = "tier1"
LOWER_GROUP = "tier2-4"
GPU_GROUP = "gpu"
GROUPS = (TIER1_GROUP, LOWER_GROUP, GPU_GROUP)
# The Serve deployment of each group (apps/prediction/): the names a handle is asked for.
POOL_DEPLOYMENTS = {TIER1_GROUP: "ModelPoolTier1", LOWER_GROUP: "ModelPool", GPU_GROUP: "GpuModelPool"}


def pool_group(tier: int, deep: bool) -> str:
    """The placement group a model belongs to: deep models share the GPU pool, the rest split by tier."""
    if deep:
        return GPU_GROUP
    return TIER1_GROUP if tier == 1 else LOWER_GROUP


def pool_serve_deployment(tier: int, framework: str) -> str:
    """The Serve deployment that serves a model of this tier and framework (Gallery's framework names)."""
    return POOL_DEPLOYMENTS[pool_group(tier, str(framework) in DEEP_FRAMEWORKS)]


@dataclass(frozen=True)
class GroupSize:
    replicas: int
    models_per_replica: int


def group_sizes(plans: Iterable[PoolPlan]) -> dict[str, GroupSize]:
    """Replicas and per-replica model slots of each group's deployment: the sum of its pools' replicas and the
    largest pool's slots; at least one replica, two for tier 1 so one can fail."""
    replicas = dict.fromkeys(GROUPS, 0)
    slots = dict.fromkeys(GROUPS, 1)
    for plan in plans:
        group = pool_group(plan.models[0].tier, plan.models[0].deep)
        replicas[group] += plan.replicas
        slots[group] = max(slots[group], plan.slots_per_replica)
    return {g: GroupSize(max(replicas[g], 2 if g == TIER1_GROUP else 1), slots[g]) for g in GROUPS}
