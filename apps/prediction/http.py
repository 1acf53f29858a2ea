"""The prediction service's FastAPI app: what every route shares (arrival stamps, the 422 body, `:predict`'s
fast path).

No `from __future__ import annotations` here: FastAPI reads the real annotations."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from ray.serve.exceptions import RayServeException

from apps.prediction.fast_path import PREDICT_ROUTE, PredictFastPath, PredictHandler

try:
    from fastapi.routing import _IncludedRouter
except ImportError:  # FastAPI < 0.137 flattens an included router's routes into the app's list

    class _IncludedRouter:  # type: ignore[no-redef]  # a node no route list holds
        original_router: Any


@asynccontextmanager
async def _predict_route_first(app: FastAPI) -> AsyncIterator[None]:
    """`:predict` first in the app that serves (`route_first`). `serve.ingress` freezes a copy of the app once it
    has mounted the class's routes, and the replica serves that copy: ordering the module's app after the
    decorator leaves the copy as it was. Its lifespan runs in the replica, on the copy."""
    route_first(app, PREDICT_ROUTE)
    yield


api = FastAPI(
    title="ma-ray prediction service",
    version="1",
    description="Online predictions by model alias.",
    lifespan=_predict_route_first,
)


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with what was wrong, without echoing the (possibly huge or binary) input back."""
    problems = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
    return JSONResponse({"detail": problems}, status_code=422)


def _serving_replica() -> PredictHandler | None:
    """The replica this request runs in (what Serve's class-based routes inject as ``self``), if any."""
    from ray import serve

    try:
        replica = serve.get_replica_context().servable_object
    except RayServeException:  # not in a replica: FastAPI serves alone
        return None
    return replica if isinstance(replica, PredictHandler) else None


api.add_middleware(PredictFastPath, replica=_serving_replica)


def route_first(app: FastAPI, path: str) -> None:
    """Put the route of ``path`` first among its router's routes, and the included router that holds it first
    among the app's. Serve names every request's route (a metrics tag) by matching the app's routes in order:
    `:predict` came after FastAPI's four documentation routes and the ten `/v2` routes, about 10 us of CPU a
    request in a quiet process, 3 us once first. No two routes' paths overlap, so the order decides nothing else."""
    chain = _chain_to(app.router, path)
    if not chain:
        raise ValueError(f"the app has no route {path!r}")
    for routes, node in chain:
        routes.remove(node)
        routes.insert(0, node)


def _chain_to(router: Any, path: str) -> list[tuple[list[Any], Any]]:
    """(routes list, node in it) from ``router`` down to the API route of ``path``; empty where none has it."""
    for node in router.routes:
        if isinstance(node, APIRoute) and node.path == path:
            return [(router.routes, node)]
        if isinstance(node, _IncludedRouter):  # FastAPI >= 0.137 nests an included router's routes under one node
            below = _chain_to(node.original_router, path)
            if below:
                return [(router.routes, node), *below]
    return []
