"""The parts of Ray Serve's private multiplexing that ``ma_ray.serving.multiplexer`` builds on are still there.

``TierAwareMultiplexer`` subclasses ``ray.serve.multiplex._ModelMultiplexWrapper`` and installs itself where
``@serve.multiplexed`` looks for its wrapper. A Ray upgrade that renames any of these fails here, with the name,
rather than as a replica that silently falls back to Serve's count-based LRU.
"""

from __future__ import annotations

import inspect

import pytest
from ray.serve import api, multiplex

from ma_ray.serving.multiplexer import WRAPPER_ATTRIBUTE, TierAwareMultiplexer

pytestmark = pytest.mark.unit

# Attributes the subclass reads or writes that Ray's __init__ must set.
INHERITED_STATE = (
    "models",
    "_func",
    "self_arg",
    "_model_cache_lock",
    "_model_load_tasks",
    "_push_multiplexed_replica_info",
    "model_load_latency_ms",
    "registered_model_gauge",
    "get_model_requests_counter",
    "models_load_counter",
    "models_unload_counter",
)


def test_the_wrapper_sets_the_state_the_subclass_uses() -> None:
    source = inspect.getsource(multiplex._ModelMultiplexWrapper.__init__)
    missing = [name for name in INHERITED_STATE if f"self.{name}" not in source]
    assert not missing, f"ray.serve.multiplex._ModelMultiplexWrapper no longer sets {missing}"


def test_the_methods_the_subclass_overrides_are_the_ones_serve_calls() -> None:
    wrapper = multiplex._ModelMultiplexWrapper
    for name in ("load_model", "unload_model_lru"):
        assert inspect.iscoroutinefunction(getattr(wrapper, name)), f"{name} is gone or no longer async"
        assert name in vars(TierAwareMultiplexer), f"TierAwareMultiplexer no longer overrides {name}"
    init = inspect.signature(wrapper.__init__).parameters
    assert list(init)[1:] == ["model_load_func", "self_arg", "max_num_models_per_replica"]


def test_serve_s_decorator_uses_the_attribute_install_sets() -> None:
    decorator = inspect.getsource(api.multiplexed)
    assert f'"{WRAPPER_ATTRIBUTE}"' in decorator and ".load_model(model_id)" in decorator
