"""From placement plans to the prediction app's pool deployments: which deployment serves a model, and how
many replicas and model slots each deployment gets."""

from __future__ import annotations

import pytest

from ma_ray.serving.placement import (
    GPU_GROUP,
    LOWER_GROUP,
    TIER1_GROUP,
    GroupSize,
    ModelProfile,
    PlacementPlanner,
    group_sizes,
    pool_serve_deployment,
)


@pytest.mark.parametrize(
    ("tier", "framework", "deployment"),
    [
        (1, "xgboost", "ModelPoolTier1"),
        (2, "xgboost", "ModelPool"),
        (4, "other", "ModelPool"),
        (1, "pytorch", "GpuModelPool"),
        (3, "deepspeed", "GpuModelPool"),
    ],
)
def test_tier1_is_kept_apart_and_deep_models_go_to_the_gpu_pool(tier: int, framework: str, deployment: str) -> None:
    assert pool_serve_deployment(tier, framework) == deployment


def test_no_models_still_gives_every_group_a_deployment_with_two_tier1_replicas() -> None:
    assert group_sizes([]) == {
        TIER1_GROUP: GroupSize(2, 1),
        LOWER_GROUP: GroupSize(1, 1),
        GPU_GROUP: GroupSize(1, 1),
    }


def test_group_sizes_add_up_the_planners_pools() -> None:
    models = [
        ModelProfile("eta", 1, 200, forecast_qps=5000),
        ModelProfile("pricing", 1, 2000, forecast_qps=3000),
        *(ModelProfile(f"promo{i}", 3, 500, forecast_qps=1) for i in range(30)),
        ModelProfile("fraud_dl", 2, 8000, forecast_qps=900, deep=True),
    ]
    plans = PlacementPlanner().plan(models)
    sizes = group_sizes(plans)
    tier1 = [p for p in plans if p.tier1 and not p.models[0].deep]
    assert sizes[TIER1_GROUP].replicas == sum(p.replicas for p in tier1) and len(tier1) == 2
    lower = [p for p in plans if not p.tier1 and not p.models[0].deep]
    assert sizes[LOWER_GROUP] == GroupSize(sum(p.replicas for p in lower), max(len(p.models) for p in lower))
    assert sizes[GPU_GROUP] == GroupSize(3, 1)  # 900 forecast qps over 400 per GPU replica
