import pytest

from ma_ray.serving.model_cache import (
    CacheFullError,
    LoadingPolicy,
    TierAwareModelCache,
    loading_policy,
    preemptive_loads,
)

MB = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cache(budget_mb: int = 100, peak: bool = True, grace_s: float = 300) -> tuple[TierAwareModelCache, Clock]:
    clock = Clock()
    return TierAwareModelCache(budget_mb * MB, grace_s, clock=clock, is_peak=lambda: peak), clock


def test_lowest_tier_then_least_recently_used_goes_first() -> None:
    models, clock = cache()
    for name, tier in (("t2-old", 2), ("t3-old", 3), ("t3-new", 3), ("t2-new", 2)):
        models.admit(name, tier, 25 * MB)
        clock.now += 1
    clock.now += 600  # everyone is past the grace period
    models.touch("t3-old")  # just used: its grace period now protects it
    assert models.admit("incoming", 2, 40 * MB) == ["t3-new", "t2-old"]
    assert models.used_bytes == 90 * MB


def test_tier1_is_never_evicted_at_peak_but_may_be_off_peak() -> None:
    peak = {"on": True}
    clock = Clock()
    models = TierAwareModelCache(100 * MB, 0, clock=clock, is_peak=lambda: peak["on"])
    models.admit("eta", 1, 60 * MB)
    models.admit("promo", 4, 30 * MB)
    with pytest.raises(CacheFullError, match="pinned"):
        models.admit("pricing", 3, 50 * MB)  # only promo (30 MB) may go: not enough
    assert models.resident() == ["eta", "promo"]  # refused admission changed nothing
    peak["on"] = False
    assert models.admit("pricing", 3, 50 * MB) == ["promo", "eta"]


def test_grace_period_protects_recent_models() -> None:
    models, clock = cache(grace_s=300)
    models.admit("a", 3, 60 * MB)
    clock.now = 100
    models.touch("a")
    clock.now = 350  # 250 s after its last use
    with pytest.raises(CacheFullError, match="grace period"):
        models.admit("b", 3, 60 * MB)
    clock.now = 401
    assert models.admit("b", 3, 60 * MB) == ["a"]


def test_admission_of_resident_or_oversized_models() -> None:
    models, _ = cache()
    models.admit("a", 2, 10 * MB)
    assert models.admit("a", 2, 10 * MB) == [] and models.used_bytes == 10 * MB
    with pytest.raises(CacheFullError, match="exceeds the whole cache budget"):
        models.admit("huge", 2, 101 * MB)
    with pytest.raises(ValueError, match="budget_bytes > 0"):
        TierAwareModelCache(0)


def test_loading_policies_and_preemptive_plan() -> None:
    assert loading_policy(1) is LoadingPolicy.EAGER
    assert loading_policy(2, forecast_qps=30) is LoadingPolicy.PREEMPTIVE
    assert loading_policy(2) is LoadingPolicy.LAZY and loading_policy(4, 100) is LoadingPolicy.LAZY
    forecast = {"a": 50.0, "b": 200.0, "c": 0.5, "d": 80.0}
    sizes = {"a": 40, "b": 70, "c": 1, "d": 20}
    assert preemptive_loads(forecast, resident=["d"], sizes=sizes, free_bytes=100) == ["b"]
    assert preemptive_loads(forecast, resident=[], sizes=sizes, free_bytes=130) == ["b", "d", "a"]
    assert preemptive_loads(forecast, resident=[], sizes=sizes, free_bytes=100) == ["b", "d"]
