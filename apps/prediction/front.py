"""The front of the prediction service: the tier-1 pool's replicas take HTTP themselves (one Serve hop).

A request is parsed here, its alias (default `production`) or pinned `?version=` resolved through Gallery's
cached resolver (invalidated at once by its broadcast), and answered by this replica when the model is tier 1
(EAGER: resident on every tier-1 replica), or sent to the model's pool (tiers 2-4, deep models) through a handle
with the multiplexed id `<model>:<version>`, retried on another replica if the one it reached died. Calls per
model version are coalesced (`ma_ray.serving.coalescing`).

No `from __future__ import annotations` here: FastAPI reads the request models from the real annotations."""

import logging
import time
import uuid
from typing import Annotated, Any

from fastapi import Header, Query, Request, Response
from pydantic_core import to_json
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from apps.prediction.errors import ERROR_TYPES, ModelLoadError, PoolMissingError, cause, message_of, status_of
from apps.prediction.fast_path import PREDICT_ROUTE, error_body
from apps.prediction.http import api, route_first
from apps.prediction.open_inference import OpenInferenceRoutes
from apps.prediction.open_inference_grpc import OpenInferenceGrpc
from apps.prediction.replica import PoolReplica, elapsed_ms
from apps.prediction.schemas import ErrorResponse, PredictQuery, PredictRequest, PredictResponse, ServingOptions
from ma_ray.metrics import after_answer, default_backend
from ma_ray.serving import (
    LOAD_FAILURES_TOTAL,
    PARSING,
    ROUTING,
    SERIALIZATION,
    TIMING_HEADER,
    CacheFullError,
    RequestCoalescer,
    encode_timing,
    pool_serve_deployment,
)

logger = logging.getLogger("ray.serve")

REPLICA_RETRIES = 3  # a request whose pool replica died is sent again; Serve routes it to a live one


@serve.ingress(api)
class FrontReplica(OpenInferenceGrpc, OpenInferenceRoutes, PoolReplica):
    """A tier-1 pool replica that also takes requests (ma-ray's `:predict`, and the Open Inference Protocol's `/v2`
    over HTTP and gRPC): tier-1 models are answered here, the others by their pool."""

    async def __init__(
        self,
        group: str,
        catalog: str = "rideshare",
        settings_overrides: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        pools: dict[str, DeploymentHandle] | None = None,
    ) -> None:
        await super().__init__(group, catalog, settings_overrides, options)
        self.pools = pools or {}
        serving = ServingOptions(**(options or {}))
        self.coalescer = RequestCoalescer(
            self._call_pool,
            serving.coalesce_in_flight,
            serving.coalesce_max_rows,
            shared_errors=(ModelLoadError, CacheFullError, PoolMissingError, RayActorError),
            gather_gap_s=serving.coalesce_gather_gap_s,
        )
        # The cached routing table: alias -> version for 1 s, invalidated at once by Gallery's broadcast.
        self.aliases = self.gallery.cached_resolver(f"ingress-{uuid.uuid4().hex[:8]}")
        self.routes: dict[str, str] = {}  # model -> pool deployment (a model's tier and framework never change)
        self.last_good: dict[tuple[str, str], int] = {}  # (model, alias) -> the last version that served it
        self._signatures = {}  # model id -> its request inputs (Open Inference Protocol metadata)
        self.load_failures = default_backend().counter(
            LOAD_FAILURES_TOTAL, "Model versions that failed to load on a pool replica", ("model",)
        )

    def _route(self, model: str, version: int | None, alias: str) -> tuple[str, int]:
        if model not in self.routes:
            registered = self.gallery.model(model)
            self.routes[model] = pool_serve_deployment(registered.tier, registered.framework)
        resolved = self.gallery.version(model, version).version if version else self.aliases.get(model, alias)
        return self.routes[model], resolved

    async def _call_pool(self, key: tuple[str, str], rows: list[dict[str, Any]]) -> dict[str, Any]:
        pool, model_id = key
        if pool == self.name:
            return await self.answer(model_id, rows)  # tier 1: resident here, no hop
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
            previous = None if version is not None else self._previous_version(model, alias, resolved)
            if previous is None or previous == resolved:
                raise
            self.last_good[(model, alias)] = previous
            reason = cause(error)
            logger.error("%s; serving version %d of alias %s instead", reason, previous, alias)
            answer = await self.coalescer.submit((pool, f"{model}:{previous}"), rows)
            return previous, answer, [f"{reason}; served version {previous}, the last that loaded"]
        if version is None:
            self.last_good[(model, alias)] = resolved
        return resolved, answer, []

    def _previous_version(self, model: str, alias: str, resolved: int) -> int | None:
        """The version to serve for ``alias`` while ``resolved`` cannot load: the last one this replica served for
        it, or, for a replica that never served it (started after the flip, or never asked before it), the one the
        alias pointed to before it moved to ``resolved`` (Gallery's alias history; read on this failure path only)."""
        previous = self.last_good.get((model, alias))
        if previous is not None:
            return previous
        for event in reversed(self.gallery.alias_history(model, alias)):
            if event.to_version == resolved:
                return event.from_version
        return None

    def _observe(self, timing: dict[str, float]) -> None:
        """Record a request's front stages (its pool stages were recorded where they ran) and its total, once its
        answer is written."""
        after_answer(self._record_front, timing)

    def _record_front(self, timing: dict[str, float]) -> None:
        self.metrics.record({k: timing[k] for k in (PARSING, ROUTING, SERIALIZATION)}, self.name)
        self.metrics.record_request(timing)

    @api.post(
        PREDICT_ROUTE,
        response_model=PredictResponse,
        responses={
            400: {"model": ErrorResponse, "description": "bad input: entity key, field type, model signature"},
            404: {"model": ErrorResponse, "description": "unknown model, version or alias"},
            503: {"model": ErrorResponse, "description": "the version cannot be loaded or cannot fit; retry later"},
        },
    )
    async def predict_route(
        self,
        model: str,
        request: PredictRequest,
        http: Request,
        query: Annotated[PredictQuery, Query()],
        timing_header: str | None = Header(
            default=None, alias=TIMING_HEADER, description="any value: return per-stage latency in this header"
        ),
    ) -> Response:
        """FastAPI's way in (the OpenAPI schema, bad input's 422); a replica's requests take `PredictFastPath`."""
        arrived = getattr(http.state, "arrived", time.perf_counter())
        status, body, headers = await self.predict_http(model, query, request, arrived, timing_header is not None)
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    async def predict_http(
        self, model: str, query: PredictQuery, request: PredictRequest, arrived: float, timing_wanted: bool
    ) -> tuple[int, bytes, dict[str, str]]:
        """A parsed `:predict`'s answer: status, JSON body (an error's is FastAPI's ``{"detail": ...}``) and the
        timing header when asked for."""
        timing = {PARSING: elapsed_ms(arrived)}
        started = time.perf_counter()
        try:
            served, answer, warnings = await self._serve(model, query.version, query.alias, request.rows)
        except ERROR_TYPES as error:
            return status_of(error), error_body(message_of(error)), {}
        timing[ROUTING] = elapsed_ms(started) - sum(answer["timing_ms"].values())
        timing.update(answer["timing_ms"])
        serialized = time.perf_counter()
        # `PredictResponse`'s fields, written by pydantic's JSON encoder straight from a dict (a third of the time
        # of building the model first): every value is already its type, the pools' predictions lists of floats.
        body = to_json(
            {
                "model": model,
                "version": served,
                "predictions": answer["predictions"],
                "degraded": answer["degraded"],
                "stream_fallback": answer["stream_fallback"],
                "timing_ms": timing,
                "warnings": warnings,
            }
        )
        timing[SERIALIZATION] = elapsed_ms(serialized)
        self._observe(timing)
        return 200, body, {TIMING_HEADER: encode_timing(timing)} if timing_wanted else {}


route_first(api, PREDICT_ROUTE)  # this process's app (OpenAPI); the replica's frozen copy orders itself at startup
