"""The prediction service on Ray Serve: `POST /v1/models/{model}:predict`, OpenAPI at `/docs`.

A thin ingress parses the request, resolves the alias (default `production`) or the pinned `?version=` through
Gallery's cached resolver and routes to the model's pool with the multiplexed id `<model>:<version>`; the pool
loads the version (tier-aware model cache), resolves its features through Palette (one read timestamp,
deadline, defaults, circuit breaker), applies its DSL transforms and infers.

Deployments of the app (a handle: ``serve.get_deployment_handle(<name>, <app name>)``):

- ``PredictionIngress``: the HTTP API.
- ``ModelPoolTier1``: tier-1 models (XGBoost and other CPU frameworks), loaded EAGERLY at replica start.
- ``ModelPool``: tier 2-4 CPU models, LAZY on first request, PREEMPTIVE for tier 2 with a traffic forecast.
- ``GpuModelPool``: deep models (PyTorch), ``num_gpus`` per replica from ``serving.gpus_per_replica`` (zero on
  CPU-only machines, same code), inference batched across requests with ``@serve.batch``.

``ma_ray.serving.placement.pool_deployment(tier, framework)`` names the pool of a model. Every pool has the methods
``predict(rows)`` (called with ``multiplexed_model_id``), ``preload(model_id) -> dict`` (loads
``<model>:<version>`` through the multiplexed path and reports the load time; call it as
``handle.options(multiplexed_model_id=model_id).preload.remote(model_id)`` so the router learns the replica has
it) and ``resident() -> dict`` (the replica's cache).

Latency: every stage of the seed's latency table (:mod:`ma_ray.serving.stage_timing`: parsing, routing,
model_load, feature_lookup_hit|miss, transformation, inference, serialization) is recorded in the histogram
``ma_ray_prediction_stage_seconds{stage, pool}``, the whole request in ``ma_ray_prediction_request_seconds{cache}``,
and, when the request has an ``X-MA-Timing`` header, returned in the ``X-MA-Timing`` response header
(Server-Timing syntax, milliseconds). Versions that fail to load count in ``ma_ray_model_load_failures_total``.

Failures: a version that fails to load leaves the alias's previous version serving (with a warning in the
response); a pool replica that dies mid-request is retried on another; a feature store outage serves defaults
with ``degraded`` set; a model that cannot fit the cache budget is refused with 503, never an OOM.

No `from __future__ import annotations` here: FastAPI reads the request models from the real annotations.
"""

import asyncio
import logging
import os
import time
import uuid
from typing import Any

import numpy as np
import ray
from fastapi import FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.handle import DeploymentHandle

from actors.feature_server import FeatureServer
from actors.model_host import install
from ma_ray.config import load_settings
from ma_ray.gallery import Gallery
from ma_ray.metrics import default_backend
from ma_ray.serving.artifact_cache import DEFAULT_ROOT, LocalArtifact, LocalArtifactCache, load_local
from ma_ray.serving.batching import infer_grouped
from ma_ray.serving.coalescing import RequestCoalescer
from ma_ray.serving.feature_resolver import EntityKeyError, UnknownReferenceError
from ma_ray.serving.model_cache import (
    CacheFullError,
    LoadingPolicy,
    TierAwareModelCache,
    loading_policy,
    preemptive_loads,
)
from ma_ray.serving.model_input import ModelInputs
from ma_ray.serving.placement import (
    DEEP_FRAMEWORKS,
    GPU_GROUP,
    LOWER_GROUP,
    POOL_DEPLOYMENTS,
    TIER1_GROUP,
    GroupSize,
    ModelProfile,
    PlacementPlanner,
    group_sizes,
    pool_deployment,
)
from ma_ray.serving.precision import SIZE_FACTOR, Precision, check_precision, input_dtype
from ma_ray.serving.stage_timing import (
    INFERENCE,
    LOAD_FAILURES_TOTAL,
    MODEL_LOAD,
    PARSING,
    ROUTING,
    SERIALIZATION,
    TIMING_HEADER,
    TRANSFORMATION,
    encode_timing,
    lookup_stage,
    shared_stage_metrics,
)

logger = logging.getLogger("ray.serve")

MAX_ROWS = 1000
REPLICA_RETRIES = 3  # a request whose pool replica died is sent again; Serve routes it to a live one

api = FastAPI(title="ma-ray prediction service", version="1", description="Online predictions by model alias.")


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, str | int | float | bool | None]] = Field(
        min_length=1, max_length=MAX_ROWS, description="entity keys (driver_id, ...) and request fields per row"
    )


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[float]
    degraded: bool = Field(description="some features were defaults: the store failed or was too slow")
    stream_fallback: list[str] = Field(
        default=[], description="streaming groups whose batch values were used: their stream lags its SLA"
    )
    timing_ms: dict[str, float]
    warnings: list[str] = Field(default=[], description="e.g. a version that failed to load and what served instead")


class ErrorResponse(BaseModel):
    detail: str = Field(description="what was wrong and how to fix it")


class ServingOptions(BaseModel):
    """``build_app`` args ``serving``: the pools' cache, loading and hardware settings."""

    model_config = ConfigDict(extra="forbid")

    cache_budget_mb: float | None = Field(
        default=None, gt=0, description="a replica's model cache; default 80% of the node's memory (the seed's)"
    )
    grace_period_s: float = Field(default=300.0, ge=0, description="no eviction this soon after a model's last use")
    peak_hours_utc: list[int] = Field(
        default=[7, 8, 9, 17, 18, 19], description="hours in which tier-1 models are never evicted"
    )
    forecast_qps: dict[str, float] = Field(default={}, description="model name -> forecast QPS (placement, preloads)")
    gpus_per_replica: float = Field(default=0.0, ge=0, description="GPU pool replicas; 0 on CPU-only machines")
    deep_precision: Precision = Field(
        default="fp32", description="GPU pool models: fp32, fp16 (GPU or CPU) or int8 (dynamic quantization, CPU only)"
    )
    num_cpus_per_replica: float = Field(default=0.25, gt=0)
    max_batch_size: int = Field(default=32, ge=1, description="GPU pool: requests batched into one forward pass")
    batch_wait_timeout_s: float = Field(default=0.002, ge=0)
    coalesce_in_flight: int = Field(
        default=2, ge=1, description="ingress: calls in flight per model version; requests beyond share the next"
    )
    coalesce_max_rows: int = Field(default=256, ge=1, description="ingress: rows in one coalesced pool call")
    artifact_cache_dir: str | None = Field(
        default=None, description="node-local directory of fetched artifacts; default <tmp>/ma_ray_artifact_cache"
    )
    artifact_cache_max_mb: float | None = Field(
        default=None,
        ge=0,
        description="disk budget of the node-local artifact cache: after a fetch, least recently used artifacts "
        "no replica has loaded are deleted; default unbounded",
    )
    replicas: dict[str, int] = Field(
        default={}, description="deployment name -> replicas, over the planner's; 0 leaves a pool out of the app"
    )

    @model_validator(mode="after")
    def _precision_fits_the_hardware(self) -> "ServingOptions":
        check_precision(self.deep_precision, "cuda" if self.gpus_per_replica > 0 else "cpu")
        return self


class AppArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    catalog: str = "rideshare"
    settings: dict[str, Any] | None = None
    serving: ServingOptions = ServingOptions()


class ModelLoadError(RuntimeError):
    """A model version could not be loaded on a pool replica (corrupt artifact, missing factory, ...)."""


class PoolMissingError(RuntimeError):
    """The model's pool deployment was left out of this app (``serving.replicas`` 0)."""


def _node_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


class LoadedModel:
    """A version ready to infer: its model object, its input builder, and where it runs."""

    def __init__(self, model: Any, inputs: ModelInputs, device: str, precision: str) -> None:
        self.model, self.inputs, self.device, self.precision = model, inputs, device, precision

    def predict(self, matrix: np.ndarray) -> list[float]:
        if hasattr(self.model, "inplace_predict"):
            return self.model.inplace_predict(matrix).tolist()
        import torch

        with torch.inference_mode():
            output = self.model(torch.as_tensor(matrix, dtype=input_dtype(self.precision), device=self.device))
        return output.reshape(len(matrix), -1)[:, 0].float().cpu().tolist()


class PoolReplica:
    """One replica of a model pool. Its models live in a tier-aware multiplexed cache (``actors.model_host``):
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
        factor = SIZE_FACTOR[self.precision] if record.flavor == "pytorch" else 1.0
        return self.gallery.model(model).tier, max(int(record.size_bytes * factor), 1)

    @serve.multiplexed(max_num_models_per_replica=-1)  # eviction by memory: actors.model_host
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
        return LoadedModel(load_local(artifact, self.device, self.precision), inputs, self.device, self.precision)

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
            if version is None or pool_deployment(registered.tier, registered.framework) != self.name:
                continue
            model_id = f"{registered.name}:{version}"
            sizes[model_id] = max(self.gallery.version(registered.name, version).size_bytes, 1)
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
            "load_ms": _ms(started),
            "already_loaded": already,
        }

    def resident(self) -> dict[str, Any]:
        """The replica's state: resident model ids, bytes used of the budget, evictions so far, the feature
        store's circuit breakers (per backend, and the request deadline's), and the replica's actor name
        (namespace ``serve``)."""
        return {
            "replica": serve.get_replica_context().replica_id.unique_id,
            "actor_name": ray.get_runtime_context().get_actor_name(),
            "feature_breakers": self._breakers(),
            "models": self.cache.resident(),
            "device": self.device,
            "used_bytes": self.cache.used_bytes,
            "budget_bytes": self.cache.budget_bytes,
            "evictions": list(self.cache.evictions),
        }

    def _breakers(self) -> dict[str, str]:
        resolver = self.features.resolver
        per_backend = getattr(resolver.store, "breaker_states", dict)()
        return {**per_backend, "deadline": str(resolver.breaker.state)}

    async def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        started = time.perf_counter()
        loaded = await self.get_model(serve.get_multiplexed_model_id())
        timing = {MODEL_LOAD: _ms(started)}
        catalog = self.features.resolver.catalog
        rows = [catalog.coerce_request_fields(row) for row in rows]
        looked_up = time.perf_counter()
        resolution = self.features.resolver.resolve(rows, loaded.inputs.needed_refs())
        timing[lookup_stage(resolution.tiers())] = _ms(looked_up)
        transformed = time.perf_counter()
        matrix = loaded.inputs.matrix(resolution.columns, len(resolution))
        timing[TRANSFORMATION] = _ms(transformed)
        inferred = time.perf_counter()
        predictions = await self._infer(loaded, matrix)
        timing[INFERENCE] = _ms(inferred)
        self.metrics.record(timing, self.name)
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
        return await self._infer_batch((loaded, matrix))

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _infer_batch(self, jobs: list[tuple[LoadedModel, np.ndarray]]) -> list[list[float]]:
        return infer_grouped(jobs)


def _cause(error: BaseException) -> BaseException:
    # An exception raised in a pool replica arrives as a RayTaskError that is also an instance of its cause.
    return error.cause if isinstance(error, RayTaskError) else error


def _bad_request(status: int, error: BaseException) -> HTTPException:
    return HTTPException(status, str(_cause(error)).strip("'\""))


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with what was wrong, without echoing the (possibly huge or binary) input back."""
    problems = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
    return JSONResponse({"detail": problems}, status_code=422)


class _ArrivalTime:
    """Stamps each request's arrival (parsing = arrival -> handler: body read + validation). A plain ASGI
    middleware: Starlette's ``BaseHTTPMiddleware`` costs an extra task and body stream per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["arrived"] = time.perf_counter()
        await self.app(scope, receive, send)


api.add_middleware(_ArrivalTime)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64)
@serve.ingress(api)
class PredictionIngress:
    def __init__(
        self,
        pools: dict[str, DeploymentHandle],
        settings_overrides: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.pools = pools
        serving = ServingOptions(**(options or {}))
        self.coalescer = RequestCoalescer(
            self._call_pool,
            serving.coalesce_in_flight,
            serving.coalesce_max_rows,
            shared_errors=(ModelLoadError, CacheFullError, PoolMissingError, RayActorError),
        )
        self.gallery = Gallery.from_settings(load_settings(**(settings_overrides or {})))
        # The cached routing table: alias -> version for 1 s, invalidated at once by Gallery's broadcast.
        self.aliases = self.gallery.cached_resolver(f"ingress-{uuid.uuid4().hex[:8]}")
        self.routes: dict[str, str] = {}  # model -> pool deployment (a model's tier and framework never change)
        self.last_good: dict[tuple[str, str], int] = {}  # (model, alias) -> the last version that served it
        self.metrics = shared_stage_metrics()
        self.load_failures = default_backend().counter(
            LOAD_FAILURES_TOTAL, "Model versions that failed to load on a pool replica", ("model",)
        )

    def _route(self, model: str, version: int | None, alias: str) -> tuple[str, int]:
        if model not in self.routes:
            registered = self.gallery.model(model)
            self.routes[model] = pool_deployment(registered.tier, registered.framework)
        resolved = self.gallery.version(model, version).version if version else self.aliases.get(model, alias)
        return self.routes[model], resolved

    async def _call_pool(self, key: tuple[str, str], rows: list[dict[str, Any]]) -> dict[str, Any]:
        pool, model_id = key
        if pool not in self.pools:
            raise PoolMissingError(f"this app runs no {pool} deployment, which {model_id} needs; deploy one")
        handle = self.pools[pool].options(multiplexed_model_id=model_id)
        for _ in range(REPLICA_RETRIES - 1):
            try:
                return await handle.predict.remote(rows)
            except RayActorError:
                logger.warning("a %s replica died serving %s; sending the request again", pool, model_id)
        return await handle.predict.remote(rows)

    async def _serve(self, model: str, version: int | None, alias: str, rows: list) -> tuple[int, dict, list[str]]:
        pool, resolved = self._route(model, version, alias)
        try:
            answer = await self.coalescer.submit((pool, f"{model}:{resolved}"), rows)
        except ModelLoadError as error:
            self.load_failures.record(1, {"model": model})
            previous = self.last_good.get((model, alias))
            if version is not None or previous is None or previous == resolved:
                raise
            reason = _cause(error)
            logger.error("%s; serving version %d of alias %s instead", reason, previous, alias)
            answer = await self.coalescer.submit((pool, f"{model}:{previous}"), rows)
            return previous, answer, [f"{reason}; served version {previous}, the last that loaded"]
        if version is None:
            self.last_good[(model, alias)] = resolved
        return resolved, answer, []

    @api.post(
        "/v1/models/{model}:predict",
        response_model=PredictResponse,
        responses={
            400: {"model": ErrorResponse, "description": "bad input: entity key, field type, model signature"},
            404: {"model": ErrorResponse, "description": "unknown model, version or alias"},
            503: {"model": ErrorResponse, "description": "the version cannot be loaded or cannot fit; retry later"},
        },
    )
    async def predict(
        self,
        model: str,
        request: PredictRequest,
        http: Request,
        version: int | None = Query(default=None, ge=1, le=2**31 - 1, description="pin a version"),
        alias: str = Query(default="production", description="resolve this alias when no version is pinned"),
        timing_header: str | None = Header(
            default=None, alias=TIMING_HEADER, description="any value: return per-stage latency in this header"
        ),
    ) -> Response:
        timing = {PARSING: _ms(getattr(http.state, "arrived", time.perf_counter()))}
        started = time.perf_counter()
        try:
            served, answer, warnings = await self._serve(model, version, alias, request.rows)
        except (EntityKeyError, UnknownReferenceError, ValueError) as error:
            raise _bad_request(400, error) from None
        except KeyError as error:  # Gallery's unknown model, version or alias
            raise _bad_request(404, error) from None
        except (ModelLoadError, CacheFullError, PoolMissingError) as error:
            raise _bad_request(503, error) from None
        timing[ROUTING] = _ms(started) - sum(answer["timing_ms"].values())
        timing.update(answer["timing_ms"])
        serialized = time.perf_counter()
        body = PredictResponse(
            model=model,
            version=served,
            predictions=answer["predictions"],
            degraded=answer["degraded"],
            stream_fallback=answer["stream_fallback"],
            timing_ms=timing,
            warnings=warnings,
        ).model_dump_json()
        timing[SERIALIZATION] = _ms(serialized)
        self.metrics.record({k: timing[k] for k in (PARSING, ROUTING, SERIALIZATION)}, "PredictionIngress")
        self.metrics.record_request(timing)
        headers = {TIMING_HEADER: encode_timing(timing)} if timing_header is not None else None
        return Response(body, media_type="application/json", headers=headers)


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


ModelPoolTier1 = serve.deployment(PoolReplica, name=POOL_DEPLOYMENTS[TIER1_GROUP], max_ongoing_requests=32)
ModelPool = serve.deployment(PoolReplica, name=POOL_DEPLOYMENTS[LOWER_GROUP], max_ongoing_requests=32)
GpuModelPool = serve.deployment(GpuPoolReplica, name=POOL_DEPLOYMENTS[GPU_GROUP], max_ongoing_requests=32)
POOLS = {TIER1_GROUP: ModelPoolTier1, LOWER_GROUP: ModelPool, GPU_GROUP: GpuModelPool}


def _application(parsed: AppArgs, sizes: dict[str, GroupSize]) -> serve.Application:
    serving = parsed.serving
    pools = {}
    for group, deployment in POOLS.items():
        name = POOL_DEPLOYMENTS[group]
        actor: dict[str, float] = {"num_cpus": serving.num_cpus_per_replica}
        if group == GPU_GROUP:
            actor["num_gpus"] = serving.gpus_per_replica
        replicas = serving.replicas.get(name, sizes[group].replicas)
        if replicas == 0:
            continue
        configured = deployment.options(num_replicas=replicas, ray_actor_options=actor)
        pools[name] = configured.bind(group, parsed.catalog, parsed.settings, serving.model_dump())
    ingress = PredictionIngress.options(num_replicas=serving.replicas.get("PredictionIngress", 1))
    return ingress.bind(pools, parsed.settings, serving.model_dump())


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
    return _application(parsed, group_sizes(PlacementPlanner().plan(profiles)))


# `serve run apps.prediction:app`: default sizes, no Gallery read at import (replicas import this module too).
app = _application(AppArgs(), group_sizes([]))
