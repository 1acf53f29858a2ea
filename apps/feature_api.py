"""The HTTP feature API: `POST /v1/features:get` on Ray Serve, OpenAPI at `/docs`.

Run with `serve run apps.feature_api:app` (catalog from MA_RAY_* settings) or deploy through a Serve config.
No `from __future__ import annotations` here: FastAPI reads the request model from the real annotations.
"""

from typing import Any

from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from actors.feature_server import FeatureServer
from ma_ray.serving import EntityKeyError, UnknownReferenceError

MAX_ROWS = 1000
MAX_FEATURES = 200

api = FastAPI(title="ma-ray feature API", version="1", description="Palette online features by entity keys.")


class FeaturesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, str | int | float | bool | None]] = Field(
        min_length=1, max_length=MAX_ROWS, description="join keys (driver_id, ...) and request fields per row"
    )
    features: list[str] = Field(min_length=1, max_length=MAX_FEATURES, description="feature refs, @palette:...")


class FeatureValue(BaseModel):
    value: Any
    feature_ts: int | None = Field(description="epoch microseconds of the stored row, null if a default")
    staleness_s: float | None
    tier: str = Field(
        description="l1, redis, cassandra, sqlite, dsl or request; for defaults: none (no stored row), "
        "unavailable (store down) or deadline (too slow)"
    )
    defaulted: bool
    stale: bool = Field(description="older than the group's TTL: served anyway, never silently expired")
    batch_fallback: bool = Field(
        default=False, description="the group's stream lags past its SLA: this is the batch pipeline's value"
    )


class FeaturesResponse(BaseModel):
    read_ts: int = Field(description="the one read timestamp of every value (epoch microseconds)")
    degraded: bool = Field(description="the store failed or its breaker is open: defaults were served")
    stream_fallback: list[str] = Field(
        default_factory=list, description="streaming groups served from batch values: their stream lags its SLA"
    )
    rows: list[dict[str, FeatureValue]]


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64)
@serve.ingress(api)
class FeatureAPI:
    def __init__(self, catalog: str = "rideshare", settings_overrides: dict[str, Any] | None = None) -> None:
        self.server = FeatureServer(catalog, settings_overrides)
        self.catalog = self.server.resolver.catalog

    @api.post("/v1/features:get", response_model=FeaturesResponse)
    def get_features(self, request: FeaturesRequest) -> Response:
        """The body is encoded once from the answer's columns (`FeaturesResponse` documents its shape)."""
        try:
            rows = [self.catalog.coerce_request_fields(row) for row in request.rows]
            answer = self.server.get_features(rows, request.features)
        except UnknownReferenceError as error:
            raise HTTPException(status_code=404, detail=str(error)) from None
        except (EntityKeyError, ValueError) as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        return Response(answer.to_json(), media_type="application/json")


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve config entry point: ``import_path: apps.feature_api:build_app`` with args {catalog: ...}."""
    return FeatureAPI.bind(args.get("catalog", "rideshare"), args.get("settings"))


app = FeatureAPI.bind()
