import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ma_ray.serving.placement import INSTANCE_CLASSES, ModelProfile, PlacementPlanner


def test_tier1_and_deep_models_get_their_own_pools() -> None:
    models = [
        ModelProfile("eta", 1, 200, forecast_qps=5000),
        ModelProfile("pricing", 1, 300, forecast_qps=3000),
        ModelProfile("promo", 3, 100, forecast_qps=10),
        ModelProfile("fraud_dl", 2, 8000, forecast_qps=100, deep=True),
    ]
    pools = PlacementPlanner().plan(models)
    by_model = {m.model: p for p in pools for m in p.models}
    assert by_model["eta"] is by_model["pricing"] and by_model["eta"].tier1
    assert by_model["promo"] is not by_model["eta"]
    assert by_model["fraud_dl"].instance.gpus == 1
    assert by_model["eta"].replicas == 8  # 8,000 forecast qps over 1,000 per medium replica
    assert by_model["promo"].replicas == 1


def test_many_small_models_are_sharded_into_pools_that_fit() -> None:
    models = [ModelProfile(f"m{i}", 3, 500, forecast_qps=1) for i in range(60)]
    pools = PlacementPlanner().plan(models)
    medium = INSTANCE_CLASSES["medium"]
    assert all(len(p.models) <= medium.max_models for p in pools)
    assert all(sum(m.memory_mb for m in p.models) <= medium.memory_mb * 0.8 for p in pools)
    assert sorted(m.model for p in pools for m in p.models) == sorted(m.model for m in models)


def test_a_model_too_big_for_any_replica_is_refused() -> None:
    with pytest.raises(ValueError, match="offers"):
        PlacementPlanner().plan([ModelProfile("giant", 2, 100_000)])
    with pytest.raises(ValueError, match="tier 1-4"):
        ModelProfile("x", 5, 1)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.floats(1, 30_000), st.floats(0, 5000), st.booleans()), max_size=80))
def test_every_model_placed_once_within_budgets(specs: list) -> None:
    models = [ModelProfile(f"m{i}", t, mb, qps, deep) for i, (t, mb, qps, deep) in enumerate(specs)]
    pools = PlacementPlanner().plan(models)
    placed = [m.model for p in pools for m in p.models]
    assert sorted(placed) == sorted(m.model for m in models)
    for pool in pools:
        assert len({m.tier == 1 for m in pool.models}) == 1  # tier 1 never shares a pool
        assert sum(m.memory_mb for m in pool.models) <= pool.instance.memory_mb * 0.8
        assert len(pool.models) <= pool.instance.max_models
        assert pool.replicas >= (2 if pool.tier1 else 1)
