"""The Open Inference Protocol (KServe V2) over REST, next to ma-ray's own `:predict`: the routes a tier-1
replica serves so that Triton's, KServe's and MLServer's clients (`tritonclient.http`) work unchanged.

Entity keys and request fields arrive as named inputs, one value per row; features are resolved by ma-ray as in
`:predict`. Errors are ``{"error": "..."}`` with 400 (bad input), 404 (unknown model or version) or 503 (the
version cannot load or fit), as the protocol has them. Parsing lives in `ma_ray.serving.open_inference`.

No `from __future__ import annotations` here: FastAPI reads the route signatures."""

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from actors.feature_server import FeatureServer
from apps.prediction.errors import ERROR_TYPES, ModelNotReadyError, message_of, status_of
from apps.prediction.http import api
from apps.prediction.replica import elapsed_ms
from apps.prediction.schemas import MAX_ROWS
from ma_ray.gallery import Gallery
from ma_ray.palette import FeatureType
from ma_ray.serving import (
    DATATYPES,
    HEADER_LENGTH,
    PARSING,
    ROUTING,
    SERIALIZATION,
    InferenceProtocolError,
    InferRequest,
    ModelInputs,
    TierAwareModelCache,
    infer_response,
    model_metadata,
    parse_infer_request,
    request_rows,
)

TAGS = ["open inference protocol (KServe V2)"]
PRODUCTION = "production"  # the alias a V2 model name without a version resolves


class InferenceError(BaseModel):
    error: str = Field(description="what was wrong and how to fix it")


class Liveness(BaseModel):
    live: bool


class Readiness(BaseModel):
    ready: bool


class ModelReadiness(BaseModel):
    name: str
    ready: bool


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class InferOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[float] | None = None
    parameters: dict[str, Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[InferOutput]


# The protocol's request, documented by hand: the body may also be JSON followed by binary tensors, which a
# pydantic body parameter would refuse, so the route reads the raw body.
INFER_REQUEST_SCHEMA = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype", "data"],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "datatype": {"type": "string", "enum": sorted(DATATYPES)},
                    "parameters": {"type": "object"},
                    "data": {"type": "array"},
                },
            },
        },
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
            },
        },
    },
}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": InferenceError, "description": "bad input: model name, datatype, shape, entity key, too many rows"},
    404: {"model": InferenceError, "description": "unknown model or version"},
    503: {"model": InferenceError, "description": "the version cannot be loaded or cannot fit; retry later"},
}
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    **ERRORS,
}
INFER_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": INFER_REQUEST_SCHEMA}}}}


def _error(error: BaseException) -> JSONResponse:
    return JSONResponse({"error": message_of(error)}, status_code=status_of(error))


def _version_number(version: str | None) -> int | None:
    if version is None:
        return None
    if not version.isdigit() or not 1 <= int(version) <= 2**31 - 1:
        raise KeyError(f"version {version!r} is not a version number (1, 2, ...)")
    return int(version)


class OpenInferenceRoutes:
    """The V2 routes of a replica that takes HTTP; the replica brings ``_serve``, ``_route``, the Gallery, the
    catalog and the metrics (`apps.prediction.front.FrontReplica`)."""

    # What the replica brings.
    gallery: Gallery
    features: FeatureServer
    types: dict[str, FeatureType]
    name: str
    cache: TierAwareModelCache
    pools: dict[str, Any]
    _signatures: dict[str, tuple[dict[str, FeatureType], list[str]]]
    _route: Callable[[str, int | None, str], tuple[str, int]]
    _serve: Callable[[str, int | None, str, list], Awaitable[tuple[int, dict, list[str]]]]
    _observe: Callable[[dict[str, float]], None]

    def _inputs(self, model: str, version: int) -> tuple[dict[str, FeatureType], list[str]]:
        """The request inputs of ``model`` at ``version`` (name -> type) and the required ones (entity keys)."""
        model_id = f"{model}:{version}"
        if model_id not in self._signatures:
            record = self.gallery.version(model, version)
            catalog = self.features.resolver.catalog
            inputs = ModelInputs(record.signature.features, record.signature.transforms, self.types)
            self._signatures[model_id] = catalog.request_inputs(inputs.needed_refs())
        return self._signatures[model_id]

    @api.get("/v2/health/live", response_model=Liveness, tags=TAGS)
    async def v2_live(self) -> dict:
        return {"live": True}

    @api.get("/v2/health/ready", response_model=Readiness, tags=TAGS)
    async def v2_ready(self) -> dict:
        return {"ready": True}  # a replica takes requests only once its EAGER models are loaded

    @api.get("/v2", response_model=ServerMetadata, tags=TAGS)
    async def v2_server(self) -> dict:
        return {"name": "ma-ray", "version": api.version, "extensions": ["binary_tensor_data"]}

    @api.get("/v2/models/{model}", response_model=ModelMetadata, responses=ERRORS, tags=TAGS)
    async def v2_model(self, model: str) -> Any:
        return _answered(lambda: self.v2_metadata(model, None))

    @api.get("/v2/models/{model}/versions/{version}", response_model=ModelMetadata, responses=ERRORS, tags=TAGS)
    async def v2_model_version(self, model: str, version: str) -> Any:
        return _answered(lambda: self.v2_metadata(model, version))

    def v2_metadata(self, model: str, version: str | None) -> dict[str, Any]:
        """The model's metadata (the inputs of the version the name or alias resolves to)."""
        _, resolved = self._route(model, _version_number(version), PRODUCTION)
        inputs, _ = self._inputs(model, resolved)
        versions = [v.version for v in self.gallery.versions(model)]
        return model_metadata(model, versions, str(self.gallery.model(model).framework), inputs)

    @api.get("/v2/models/{model}/ready", response_model=ModelReadiness, responses=ERRORS, tags=TAGS)
    async def v2_model_ready(self, model: str) -> Any:
        return _answered(lambda: self._readiness(model, None))

    @api.get("/v2/models/{model}/versions/{version}/ready", response_model=ModelReadiness, responses=ERRORS, tags=TAGS)
    async def v2_model_version_ready(self, model: str, version: str) -> Any:
        return _answered(lambda: self._readiness(model, version))

    def _readiness(self, model: str, version: str | None) -> dict[str, Any]:
        if not self.v2_is_ready(model, version):
            raise ModelNotReadyError(f"{model} is not ready on this replica")
        return {"name": model, "ready": True}

    def v2_is_ready(self, model: str, version: str | None) -> bool:
        """Ready when this replica holds the version (tier 1) or the app runs the model's pool (other tiers)."""
        pool, resolved = self._route(model, _version_number(version), PRODUCTION)
        return (pool == self.name and f"{model}:{resolved}" in self.cache) or pool in self.pools

    @api.post(
        "/v2/models/{model}/infer",
        response_model=InferResponse,
        responses=INFER_RESPONSES,
        tags=TAGS,
        openapi_extra=INFER_BODY,
    )
    async def v2_infer(self, model: str, http: Request) -> Response:
        return await self._answer_v2(model, None, http)

    @api.post(
        "/v2/models/{model}/versions/{version}/infer",
        response_model=InferResponse,
        responses=INFER_RESPONSES,
        tags=TAGS,
        openapi_extra=INFER_BODY,
    )
    async def v2_infer_version(self, model: str, version: str, http: Request) -> Response:
        return await self._answer_v2(model, version, http)

    async def _answer_v2(self, model: str, version: str | None, http: Request) -> Response:
        timing = {PARSING: elapsed_ms(getattr(http.state, "arrived", time.perf_counter()))}
        body = await http.body()
        try:
            parse = partial(parse_infer_request, body, _header_length(http), MAX_ROWS)
            request, served, answer, warnings = await self.v2_predict(model, version, parse, timing)
        except ERROR_TYPES as error:
            return _error(error)
        serialized = time.perf_counter()
        body, headers = infer_response(
            model, served, request.id, answer["predictions"], v2_parameters(answer, warnings), request.binary_output
        )
        timing[SERIALIZATION] = elapsed_ms(serialized)
        self._observe(timing)
        media_type = "application/octet-stream" if headers else "application/json"
        return Response(body, media_type=media_type, headers=headers)

    async def v2_predict(
        self, model: str, version: str | None, parse: Callable[[], InferRequest], timing: dict[str, float]
    ) -> tuple[InferRequest, int, dict[str, Any], list[str]]:
        """Parse, check the inputs against the model's and predict; fills ``timing``'s routing and pool stages.
        Raises what `status_of` maps."""
        started = time.perf_counter()
        pinned = _version_number(version)
        _, resolved = self._route(model, pinned, PRODUCTION)
        inputs, required = self._inputs(model, resolved)
        request = parse()
        rows = request_rows(request, inputs, required)  # at most MAX_ROWS: the parser caps each input's elements
        served, answer, warnings = await self._serve(model, pinned, PRODUCTION, rows)
        timing[ROUTING] = elapsed_ms(started) - sum(answer["timing_ms"].values())
        timing.update(answer["timing_ms"])
        return request, served, answer, warnings


def _answered(answer: Callable[[], dict[str, Any]]) -> Any:
    try:
        return answer()
    except ERROR_TYPES as error:
        return _error(error)


def v2_parameters(answer: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """The response's parameters: whether defaults were served, and why, when it matters."""
    parameters: dict[str, Any] = {"degraded": answer["degraded"]}
    if answer["stream_fallback"]:
        parameters["stream_fallback"] = answer["stream_fallback"]
    if warnings:
        parameters["warnings"] = warnings
    return parameters


def _header_length(http: Request) -> int | None:
    value = http.headers.get(HEADER_LENGTH)
    if value is None:
        return None
    if not value.isdigit():
        raise InferenceProtocolError(f"{HEADER_LENGTH} must be a byte count, got {value!r}")
    return int(value)
