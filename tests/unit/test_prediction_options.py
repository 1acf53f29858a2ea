"""The prediction app's options refuse deployments it does not have, with a message that says what to size."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from apps.prediction import ServingOptions


def test_the_front_takes_http_so_the_old_ingress_name_is_refused_with_what_to_size_instead() -> None:
    with pytest.raises(ValidationError, match="tier-1 pool \\(ModelPoolTier1\\) takes HTTP itself"):
        ServingOptions(replicas={"PredictionIngress": 2})


@pytest.mark.parametrize(
    ("replicas", "fragment"),
    [
        ({"ModelPoolTeir1": 1}, "unknown deployment\\(s\\) ModelPoolTeir1"),
        ({"ModelPoolTier1": 0}, "ModelPoolTier1 \\(it takes HTTP\\) >= 1"),
        ({"ModelPool": -1}, "replicas must be >= 0"),
    ],
)
def test_bad_replica_counts_are_refused(replicas: dict[str, int], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        ServingOptions(replicas=replicas)


def test_pools_may_be_left_out_but_the_front_stays() -> None:
    assert ServingOptions(replicas={"ModelPool": 0, "GpuModelPool": 0, "ModelPoolTier1": 2}).replicas["ModelPool"] == 0


def test_every_pool_runs_its_code_on_the_replicas_main_loop() -> None:
    """`REPLICA_ENV` reaches each deployment's actor options (Serve's `Application._bound_deployment`, pinned here):
    the pools skip the thread hop Serve makes by default."""
    from apps.prediction import REPLICA_ENV, AppArgs, application
    from ma_ray.serving import group_sizes

    front = application(AppArgs(), group_sizes([]))._bound_deployment
    deployments = [front, *(pool._bound_deployment for pool in front.init_args[-1].values())]
    assert {d.name for d in deployments} == {"ModelPoolTier1", "ModelPool", "GpuModelPool"}
    for deployment in deployments:
        assert deployment.ray_actor_options["runtime_env"]["env_vars"] == REPLICA_ENV
        assert REPLICA_ENV == {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
