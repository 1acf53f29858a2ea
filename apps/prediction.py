"""The prediction service on Ray Serve: `POST /v1/models/{model}:predict`, OpenAPI at `/docs`.

A thin ingress resolves the alias (default `production`) or the pinned `?version=` through Gallery's cached
resolver and routes to a multiplexed model pool with the multiplexed id `<model>:<version>`; the pool loads
the version from Gallery (verified artifact), resolves its features through Palette (one read timestamp,
deadline, defaults), applies its DSL transforms and infers.
No `from __future__ import annotations` here: FastAPI reads the request models from the real annotations.
"""

import time
import uuid
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve.handle import DeploymentHandle

from actors.feature_server import FeatureServer
from ma_ray.config import load_settings
from ma_ray.gallery import Gallery
from ma_ray.serving.feature_resolver import EntityKeyError, UnknownReferenceError
from ma_ray.serving.model_input import ModelInputs

MAX_ROWS = 1000

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
    timing_ms: dict[str, float]


class LoadedModel:
    def __init__(self, booster: Any, inputs: ModelInputs) -> None:
        self.booster, self.inputs = booster, inputs


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32)
class ModelPool:
    """Multiplexed replicas: each keeps up to ``max_models`` loaded models, routed by `<model>:<version>`."""

    def __init__(self, catalog: str = "rideshare", settings_overrides: dict[str, Any] | None = None) -> None:
        settings = load_settings(**(settings_overrides or {}))
        self.gallery = Gallery.from_settings(settings)
        self.features = FeatureServer(catalog, settings_overrides)
        self.types = {**self.features.resolver.catalog.basis}
        catalog_view = self.features.resolver.catalog
        self.types.update({ref: f.table.features[f.name] for ref, f in catalog_view.stored.items()})
        self.types.update({ref: d.expression.output_type for ref, d in catalog_view.derived.items()})

    @serve.multiplexed(max_num_models_per_replica=50)
    async def get_model(self, model_id: str) -> LoadedModel:
        model, _, version = model_id.rpartition(":")
        record = self.gallery.version(model, int(version))
        signature = record.signature
        inputs = ModelInputs(signature.features, signature.transforms, self.types)
        return LoadedModel(self.gallery.load(model, int(version)), inputs)

    async def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        started = time.perf_counter()
        loaded = await self.get_model(serve.get_multiplexed_model_id())
        loaded_at = time.perf_counter()
        catalog = self.features.resolver.catalog
        rows = [catalog.coerce_request_fields(row) for row in rows]
        resolution = self.features.resolver.resolve(rows, loaded.inputs.needed_refs())
        resolved_at = time.perf_counter()
        matrix = np.array([loaded.inputs.vector(r.values) for r in resolution.rows], dtype=np.float64)
        predictions = loaded.booster.inplace_predict(matrix).tolist()
        done = time.perf_counter()
        return {
            "predictions": predictions,
            "degraded": resolution.degraded,
            "timing_ms": {
                "model_load": (loaded_at - started) * 1000,
                "feature_lookup": (resolved_at - loaded_at) * 1000,
                "transform_and_inference": (done - resolved_at) * 1000,
            },
        }


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64)
@serve.ingress(api)
class PredictionIngress:
    def __init__(self, pool: DeploymentHandle, settings_overrides: dict[str, Any] | None = None) -> None:
        self.pool = pool
        self.gallery = Gallery.from_settings(load_settings(**(settings_overrides or {})))
        # The cached routing table: alias -> version for 1 s, invalidated at once by Gallery's broadcast.
        self.aliases = self.gallery.cached_resolver(f"ingress-{uuid.uuid4().hex[:8]}")

    @api.post("/v1/models/{model}:predict", response_model=PredictResponse)
    async def predict(
        self,
        model: str,
        request: PredictRequest,
        version: int | None = Query(default=None, ge=1, description="pin a version"),
        alias: str = Query(default="production", description="resolve this alias when no version is pinned"),
    ) -> PredictResponse:
        started = time.perf_counter()
        try:
            resolved = self.gallery.version(model, version).version if version else self.aliases.get(model, alias)
        except KeyError as error:
            raise HTTPException(404, str(error).strip("'\"")) from None
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        routed = time.perf_counter()
        try:
            answer = await self.pool.options(multiplexed_model_id=f"{model}:{resolved}").predict.remote(request.rows)
        except (EntityKeyError, UnknownReferenceError, ValueError) as error:
            raise HTTPException(400, str(error)) from None
        timing = {"routing": (routed - started) * 1000, **answer["timing_ms"]}
        return PredictResponse(
            model=model,
            version=resolved,
            predictions=answer["predictions"],
            degraded=answer["degraded"],
            timing_ms=timing,
        )


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve config entry point: ``import_path: apps.prediction:build_app`` with args {catalog: ...}."""
    settings = args.get("settings")
    pool = ModelPool.bind(args.get("catalog", "rideshare"), settings)
    return PredictionIngress.bind(pool, settings)


app = build_app({})
