"""A model pool replica: a tier-aware multiplexed model cache (`ma_ray.serving.multiplexer`), the feature resolver,
the DSL transforms and inference. ``PoolReplica`` serves the CPU pools, ``GpuPoolReplica`` batches deep models across
requests; the tier-1 pool's replicas also take HTTP (`apps.prediction.front`)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from ray import serve

from actors.feature_server import FeatureServer
from apps.prediction.errors import ModelLoadError
from apps.prediction.schemas import ServingOptions
from ma_ray.config import load_settings
from ma_ray.gallery import Gallery, ModelVersion
from ma_ray.metrics import after_answer
from ma_ray.serving import (
    DEFAULT_ROOT,
    INFERENCE,
    MODEL_LOAD,
    POOL_DEPLOYMENTS,
    TRANSFORMATION,
    LoadingPolicy,
    LocalArtifact,
    LocalArtifactCache,
    ModelInputs,
    Predictor,
    TierAwareModelCache,
    infer_grouped,
    loading_policy,
    lookup_stage,
    pool_serve_deployment,
    preemptive_loads,
    serving_framework,
    shared_stage_metrics,
)
from ma_ray.serving.multiplexer import install

logger = logging.getLogger("ray.serve")


def _node_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def elapsed_ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


@dataclass(frozen=True)
class LoadedModel:
    """A version ready to infer: its framework's predictor and its input builder."""

    predictor: Predictor
    inputs: ModelInputs

    def predict(self, matrix: np.ndarray) -> list[float]:
        return self.predictor.predict(matrix)


class PoolReplica:
    """One replica of a model pool. Its models live in a tier-aware multiplexed cache (``ma_ray.serving.multiplexer``):
    evicted by memory budget, lowest tier first, LRU within a tier, tier 1 pinned at peak, after a grace period."""

    async def __init__(
        self,
        group: str,
        catalog: str = "rideshare",
        settings_overrides: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._setup(group, catalog, settings_overrides, options)
        await self.prewarm()  # the replica takes no traffic before its EAGER models are loaded

    def _setup(
        self, group: str, catalog: str, settings_overrides: dict[str, Any] | None, options: dict[str, Any] | None
    ) -> None:
        self.options = ServingOptions(**(options or {}))
        self.name = POOL_DEPLOYMENTS[group]
        settings = load_settings(**(settings_overrides or {}))
        self.gallery = Gallery.from_settings(settings)
        self.features = FeatureServer(catalog, settings_overrides)
        catalog_view = self.features.resolver.catalog
        self.types = {**catalog_view.basis}
        self.types.update({ref: f.table.features[f.name] for ref, f in catalog_view.stored.items()})
        self.types.update({ref: d.expression.output_type for ref, d in catalog_view.derived.items()})
        self.device = "cpu"
        if self.options.gpus_per_replica > 0:
            import torch

            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.precision = self.options.deep_precision
        budget = self.options.cache_budget_mb
        budget_bytes = int(budget * 1024 * 1024) if budget else int(_node_memory_bytes() * 0.8)
        self.cache = TierAwareModelCache(budget_bytes, self.options.grace_period_s, is_peak=self._is_peak)
        max_mb = self.options.artifact_cache_max_mb
        max_bytes = None if max_mb is None else int(max_mb * 1024 * 1024)
        self.artifacts = LocalArtifactCache(self.options.artifact_cache_dir or DEFAULT_ROOT, max_bytes)
        self.artifact_pins: dict[str, str] = {}  # model id -> its artifact's checksum, pinned while loaded
        install(self, type(self).get_model, self.cache, self._describe, self._release_artifact)
        self.metrics = shared_stage_metrics()

    def _is_peak(self) -> bool:
        return time.gmtime().tm_hour in self.options.peak_hours_utc

    async def _describe(self, model_id: str) -> tuple[int, int]:
        model, _, version = model_id.rpartition(":")
        record = self.gallery.version(model, int(version))
        return self.gallery.model(model).tier, self._memory_bytes(record)

    def _memory_bytes(self, record: ModelVersion) -> int:
        return serving_framework(record.flavor).memory_bytes(record.size_bytes, self.precision)

    @serve.multiplexed(max_num_models_per_replica=-1)  # eviction by memory: ma_ray.serving.multiplexer
    async def get_model(self, model_id: str) -> LoadedModel:
        try:
            return await asyncio.to_thread(self._load, model_id)
        except Exception as error:
            self._release_artifact(model_id)
            raise ModelLoadError(f"model {model_id} failed to load: {error}") from None

    def _load(self, model_id: str) -> LoadedModel:
        model, _, version = model_id.rpartition(":")
        record = self.gallery.version(model, int(version))
        inputs = ModelInputs(record.signature.features, record.signature.transforms, self.types)
        artifact = self._pinned_artifact(model_id, record.artifact_uri, record.checksum)
        predictor = serving_framework(record.flavor).load(artifact, self.device, self.precision)
        return LoadedModel(predictor, inputs)

    def _pinned_artifact(self, model_id: str, uri: str, checksum: str) -> LocalArtifact:
        # Pinned before the get, so no replica's prune deletes the files while this model maps them.
        self.artifacts.pin(checksum)
        self.artifact_pins[model_id] = checksum
        return self.artifacts.get(uri, checksum)

    def _release_artifact(self, model_id: str) -> None:
        """The model left the replica (evicted, or failed to load): its artifact may be pruned."""
        checksum = self.artifact_pins.pop(model_id, None)
        if checksum is not None:
            self.artifacts.unpin(checksum)

    def startup_loads(self) -> list[str]:
        """This pool's models to load at replica start: EAGER ones (tier 1), then PREEMPTIVE ones (tier 2 with
        forecast traffic), busiest first, while they fit; each at its production version."""
        eager, forecast, sizes = [], {}, {}
        for registered in self.gallery.models():
            version = self.gallery.aliases(registered.name).get("production")
            if version is None or pool_serve_deployment(registered.tier, registered.framework) != self.name:
                continue
            model_id = f"{registered.name}:{version}"
            sizes[model_id] = self._memory_bytes(self.gallery.version(registered.name, version))
            qps = self.options.forecast_qps.get(registered.name, 0.0)
            policy = loading_policy(registered.tier, qps)
            if policy is LoadingPolicy.EAGER:
                eager.append(model_id)
            elif policy is LoadingPolicy.PREEMPTIVE:
                forecast[model_id] = qps
        free = self.cache.budget_bytes - self.cache.used_bytes - sum(sizes[m] for m in eager)
        return eager + preemptive_loads(forecast, self.cache.resident(), sizes, free)

    async def prewarm(self) -> dict[str, str]:
        """Load :meth:`startup_loads` in parallel; returns the ids that failed, with why (they load lazily
        later, and the failure is logged)."""
        wanted = self.startup_loads()
        outcomes = await asyncio.gather(*(self.get_model(m) for m in wanted), return_exceptions=True)
        failed = {m: str(o) for m, o in zip(wanted, outcomes, strict=True) if isinstance(o, BaseException)}
        for model_id, reason in failed.items():
            logger.error("pre-warming %s failed: %s", model_id, reason)
        return failed

    async def preload(self, model_id: str) -> dict[str, Any]:
        """Load ``<model>:<version>`` into this replica's cache through the multiplexed path (shadow loading
        before an alias flip). Raises ModelLoadError if it cannot load, CacheFullError if it cannot fit."""
        already = model_id in self.cache
        started = time.perf_counter()
        await self.get_model(model_id)
        return {
            "model_id": model_id,
            "replica": serve.get_replica_context().replica_id.unique_id,
            "load_ms": elapsed_ms(started),
            "already_loaded": already,
        }

    def resident(self) -> dict[str, Any]:
        """The replica's state: resident model ids, bytes used of the budget, evictions so far, the feature
        store's circuit breakers (per backend, and the request deadline's), and the replica's actor name
        (namespace ``serve``)."""
        return {
            "replica": serve.get_replica_context().replica_id.unique_id,
            "actor_name": ray.get_runtime_context().get_actor_name(),
            "feature_breakers": self.features.resolver.breaker_states(),
            "models": self.cache.resident(),
            "device": self.device,
            "used_bytes": self.cache.used_bytes,
            "budget_bytes": self.cache.budget_bytes,
            "evictions": list(self.cache.evictions),
        }

    async def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Called through a handle with ``multiplexed_model_id``: the front's call for a model of this pool."""
        return await self.answer(serve.get_multiplexed_model_id(), rows)

    async def answer(self, model_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Predictions of ``<model>:<version>`` for ``rows``, with the stages' timings."""
        started = time.perf_counter()
        loaded = await self.get_model(model_id)
        timing = {MODEL_LOAD: elapsed_ms(started)}
        catalog = self.features.resolver.catalog
        rows = [catalog.coerce_request_fields(row) for row in rows]
        looked_up = time.perf_counter()
        resolution = await self.features.resolver.resolve_async(rows, loaded.inputs.needed_refs())
        timing[lookup_stage(resolution.tiers())] = elapsed_ms(looked_up)
        transformed = time.perf_counter()
        matrix = loaded.inputs.matrix(resolution.columns, len(resolution))
        timing[TRANSFORMATION] = elapsed_ms(transformed)
        inferred = time.perf_counter()
        predictions = await self._infer(loaded, matrix)
        timing[INFERENCE] = elapsed_ms(inferred)
        after_answer(self.metrics.record, timing, self.name)
        return {
            "predictions": predictions,
            "degraded": resolution.degraded,
            "stream_fallback": list(resolution.stream_fallback),
            "timing_ms": timing,
        }

    async def _infer(self, loaded: LoadedModel, matrix: np.ndarray) -> list[float]:
        return loaded.predict(matrix)


class GpuPoolReplica(PoolReplica):
    """Deep models: requests that arrive together are stacked into one forward pass per model."""

    def _setup(
        self, group: str, catalog: str, settings_overrides: dict[str, Any] | None, options: dict[str, Any] | None
    ) -> None:
        super()._setup(group, catalog, settings_overrides, options)
        self._infer_batch.set_max_batch_size(self.options.max_batch_size)
        self._infer_batch.set_batch_wait_timeout_s(self.options.batch_wait_timeout_s)

    async def _infer(self, loaded: LoadedModel, matrix: np.ndarray) -> list[float]:
        answer = await self._infer_batch((loaded, matrix))
        if isinstance(answer, Exception):  # this request's rows failed; its batch-mates were answered
            raise answer
        return answer

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _infer_batch(self, jobs: list[tuple[LoadedModel, np.ndarray]]) -> list[list[float] | Exception]:
        return infer_grouped(jobs)
