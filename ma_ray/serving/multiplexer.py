"""The model cache of a Serve model-pool replica: Ray Serve's multiplexing, with its eviction replaced.

Ray's ``_ModelMultiplexWrapper`` (``ray/serve/multiplex.py``) keeps a replica's models in an LRU ``OrderedDict``
capped by count, and reports the ids it holds (and is loading) to the controller, whose router then sends a
model's requests to the replicas that have it. :class:`TierAwareMultiplexer` keeps all of that (the same
``models`` dict, the same reporting, the same metrics) and hands the eviction decision to
:class:`~ma_ray.serving.model_cache.TierAwareModelCache`: a memory budget instead of a count, lowest tier first,
LRU within a tier, tier 1 pinned during peak, a grace period after a model's last use. Room is made *before*
a model is loaded, and a model that cannot fit is refused with :class:`CacheFullError`: never an OOM.

Install it on a deployment whose loader is decorated with ``@serve.multiplexed`` (the decorator marks the
deployment as multiplexed for the router) by calling :func:`install` in the deployment's ``__init__``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ray.serve.multiplex import _ModelMultiplexWrapper

from ma_ray.serving.model_cache import CacheFullError, TierAwareModelCache

logger = logging.getLogger("ray.serve")

# The attribute under which `@serve.multiplexed` looks for (and otherwise creates) a replica's wrapper.
WRAPPER_ATTRIBUTE = "__serve_multiplex_wrapper"

Describe = Callable[[str], Awaitable[tuple[int, int]]]
OnEvict = Callable[[str], None]


class TierAwareMultiplexer(_ModelMultiplexWrapper):
    """A multiplex wrapper whose eviction follows a :class:`TierAwareModelCache`.

    ``describe(model_id)`` returns the model's (tier, size in bytes) before it is loaded; ``on_evict(model_id)``,
    if given, is called after a loaded model leaves the replica (to release what its load holds).
    """

    def __init__(
        self,
        load: Callable[[Any, str], Awaitable[Any]],
        owner: Any,
        cache: TierAwareModelCache,
        describe: Describe,
        on_evict: OnEvict | None = None,
    ) -> None:
        # Ray types the loader as Callable[[str], Any]; with self_arg (owner) it is called as load(owner, model_id)
        super().__init__(load, owner, max_num_models_per_replica=-1)  # type: ignore[arg-type]
        self.cache = cache
        self.describe = describe
        self.on_evict = on_evict
        self._pending: dict[str, asyncio.Future[Any]] = {}

    async def load_model(self, model_id: str) -> Any:
        """The loaded model, from the cache or loaded now (after making room for it by the cache's policy).
        Different models load concurrently (pre-warming loads in parallel); one model loads once."""
        if not isinstance(model_id, str) or not model_id:
            raise ValueError(f"a multiplexed model id must be a non-empty string, got {model_id!r}")
        self.get_model_requests_counter.inc()
        if model_id in self.models:
            self.models.move_to_end(model_id)
            self.cache.touch(model_id)
            return self.models[model_id]
        pending = self._pending.get(model_id)
        if pending is None:
            pending = asyncio.ensure_future(self._load(model_id))
            self._pending[model_id] = pending
            pending.add_done_callback(lambda _: self._pending.pop(model_id, None))
        return await asyncio.shield(pending)

    async def _load(self, model_id: str) -> Any:
        # Tell the router early that this replica is getting the model, as Serve's own wrapper does.
        self._push_multiplexed_replica_info = True
        self._model_load_tasks.add(model_id)
        try:
            tier, size_bytes = await self.describe(model_id)
            async with self._model_cache_lock:  # room is reserved before the load, so loads never overcommit
                for victim in self.cache.admit(model_id, tier, size_bytes):
                    await self.unload(victim)
            self.models_load_counter.inc()
            started = time.perf_counter()
            try:
                model = await self._func(self.self_arg, model_id)
            except BaseException:
                self.cache.remove(model_id)
                raise
            async with self._model_cache_lock:
                if model_id not in self.cache:  # another load evicted the reservation while this one ran
                    try:
                        victims = self.cache.admit(model_id, tier, size_bytes)
                    except CacheFullError:
                        self._released(model_id)  # the loaded model is dropped unused
                        raise
                    for victim in victims:
                        await self.unload(victim)
                self.models[model_id] = model
            self.model_load_latency_ms.observe((time.perf_counter() - started) * 1000)
            return model
        finally:
            self._model_load_tasks.discard(model_id)
            self._push_multiplexed_replica_info = True

    async def unload(self, model_id: str) -> None:
        """Drop a model from the replica (and from the router's view at the next push)."""
        model = self.models.pop(model_id, None)
        self.cache.remove(model_id)
        if model is None:
            return
        self.models_unload_counter.inc()
        self.registered_model_gauge.set(0, tags={"model_id": model_id})
        self._push_multiplexed_replica_info = True
        logger.info("evicted model %s (tier-aware cache, %d bytes in use)", model_id, self.cache.used_bytes)
        self._released(model_id)

    def _released(self, model_id: str) -> None:
        if self.on_evict is not None:
            self.on_evict(model_id)

    async def unload_model_lru(self) -> None:
        """Serve calls this on replica shutdown until no model is left."""
        if self.models:
            await self.unload(next(iter(self.models)))


def install(
    owner: Any,
    loader: Callable[..., Any],
    cache: TierAwareModelCache,
    describe: Describe,
    on_evict: OnEvict | None = None,
) -> None:
    """Give ``owner`` (a deployment instance) a tier-aware multiplexer for its ``@serve.multiplexed`` ``loader``
    (the decorated method, as found on the class); Serve's decorator then uses it instead of its own."""
    raw = inspect.unwrap(loader)
    if not asyncio.iscoroutinefunction(raw):
        raise TypeError(f"{raw.__qualname__} must be an async loader decorated with @serve.multiplexed")
    setattr(owner, WRAPPER_ATTRIBUTE, TierAwareMultiplexer(raw, owner, cache, describe, on_evict))
