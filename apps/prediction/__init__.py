"""The prediction service on Ray Serve: `POST /v1/models/{model}:predict`, OpenAPI at `/docs`.

One Serve hop: the tier-1 pool's replicas take HTTP themselves (`front`). A request is parsed there, its alias
(default `production`) or pinned `?version=` resolved through Gallery's cached resolver, and a tier-1 model
(EAGER: resident on every tier-1 replica) answered on the spot; a model of another pool is sent to it with the
multiplexed id `<model>:<version>`. The replica that answers loads the version (tier-aware model cache),
resolves its features through Palette (one read timestamp, deadline, defaults, circuit breaker), applies its
DSL transforms and infers.

Deployments of the app (a handle: ``serve.get_deployment_handle(<name>, <app name>)``):

- ``ModelPoolTier1``: takes HTTP; tier-1 models (XGBoost and other CPU frameworks), loaded EAGERLY at replica
  start. At least one replica.
- ``ModelPool``: tier 2-4 CPU models, LAZY on first request, PREEMPTIVE for tier 2 with a traffic forecast.
- ``GpuModelPool``: deep models (PyTorch), ``num_gpus`` per replica from ``serving.gpus_per_replica`` (zero on
  CPU-only machines, same code), inference batched across requests with ``@serve.batch``.

``ma_ray.serving.placement.pool_serve_deployment(tier, framework)`` names the pool of a model. Every pool has the
methods ``predict(rows)`` (called with ``multiplexed_model_id``), ``preload(model_id) -> dict`` (loads
``<model>:<version>`` through the multiplexed path and reports the load time; call it as
``handle.options(multiplexed_model_id=model_id).preload.remote(model_id)`` so the router learns the replica has
it) and ``resident() -> dict`` (the replica's cache).

Latency: every stage of the seed's latency table (:mod:`ma_ray.serving.stage_timing`: parsing, routing,
model_load, feature_lookup_hit|miss, transformation, inference, serialization) is recorded in the histogram
``ma_ray_prediction_stage_seconds{stage, pool}``, the whole request in ``ma_ray_prediction_request_seconds{cache}``,
and, when the request has an ``X-MA-Timing`` header, returned in the ``X-MA-Timing`` response header
(Server-Timing syntax, milliseconds). Versions that fail to load count in ``ma_ray_model_load_failures_total``.

Failures: a version that fails to load leaves the alias's previous version serving (with a warning in the
response); a pool replica behind the front that dies mid-request is retried on another; a front replica that
dies loses the requests it was answering (Serve's proxy sends new ones to the live replicas); a feature store
outage serves defaults with ``degraded`` set; a model that cannot fit the cache budget is refused with 503,
never an OOM.

Modules: ``schemas`` (request, response, options), ``errors``, ``replica`` (a pool replica), ``http`` (the
FastAPI app), ``fast_path`` (`:predict` answered ahead of FastAPI), ``front`` (routing, coalescing, `:predict`),
``open_inference`` (the KServe V2 routes), ``builder`` (the application).
"""

from apps.prediction.builder import REPLICA_ENV, GpuModelPool, ModelPool, ModelPoolTier1, application, build_app
from apps.prediction.errors import ModelLoadError, PoolMissingError
from apps.prediction.front import FrontReplica
from apps.prediction.http import api
from apps.prediction.replica import GpuPoolReplica, LoadedModel, PoolReplica
from apps.prediction.schemas import AppArgs, PredictRequest, PredictResponse, ServingOptions
from ma_ray.serving import group_sizes

# `serve run apps.prediction:app`: default sizes, no Gallery read at import (replicas import this package too).
app = application(AppArgs(), group_sizes([]))

__all__ = [
    "REPLICA_ENV",
    "AppArgs",
    "FrontReplica",
    "GpuModelPool",
    "GpuPoolReplica",
    "LoadedModel",
    "ModelLoadError",
    "ModelPool",
    "ModelPoolTier1",
    "PoolMissingError",
    "PoolReplica",
    "PredictRequest",
    "PredictResponse",
    "ServingOptions",
    "api",
    "app",
    "build_app",
]
