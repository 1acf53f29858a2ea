"""`POST /v1/models/{model}:predict` without FastAPI's per-request work, as the ASGI middleware of the app.

FastAPI spends about 0.17 ms of CPU on a `:predict` before and after the handler (route search, dependency and
parameter solving, the body's JSON decoded and then validated as Python objects), a third of the server's
parsing and routing budget. This path matches the route with one regex, validates the query and the body with
the same pydantic models (the body straight from JSON bytes) and calls the replica's handler itself. Only the
common case takes it: a request it cannot take as it is (a body that is not JSON, an invalid query or body)
goes to FastAPI with its body replayed, so every error answer stays FastAPI's own; the FastAPI route stays too,
for the OpenAPI schema and for apps served outside a replica."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl

from pydantic import ValidationError

from apps.prediction.schemas import PredictQuery, PredictRequest
from ma_ray.serving import TIMING_HEADER

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PREDICT_ROUTE = "/v1/models/{model}:predict"  # the FastAPI route
PREDICT_PATH = re.compile(r"/v1/models/(?P<model>[^/]+):predict")  # what this path matches of it
_TIMING = TIMING_HEADER.lower().encode()
_JSON_TYPES = (b"application/json",)
NO_QUERY = PredictQuery()  # most calls send none: the defaults, validated once (the handler only reads it)


@runtime_checkable
class PredictHandler(Protocol):
    async def predict_http(
        self, model: str, query: PredictQuery, request: PredictRequest, arrived: float, timing: bool
    ) -> tuple[int, bytes, dict[str, str]]:
        """Status, JSON body and extra headers of the answer."""


def route_path(scope: Scope) -> str:
    """The path below the app's mount point (Serve mounts an app at its route prefix via ``root_path``)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def parsed(scope: Scope, body: bytes) -> tuple[PredictQuery, PredictRequest] | None:
    """The query and body of a `:predict` as the route's models read them (the query as Starlette splits it: the
    last of repeated names, blank values kept), or None where FastAPI must answer."""
    headers = dict(scope["headers"])
    content_type = headers.get(b"content-type")
    if not body or (content_type is not None and not content_type.startswith(_JSON_TYPES)):
        return None
    try:
        text = scope["query_string"].decode("latin-1")
        query = PredictQuery.model_validate(dict(parse_qsl(text, True))) if text else NO_QUERY
        return query, PredictRequest.model_validate_json(body)
    except ValidationError:
        return None


class PredictFastPath:
    """Stamps every request's arrival (``scope["state"]["arrived"]``: parsing is arrival -> handler) and answers
    `:predict` itself when the serving replica (``replica()``) can take it. A plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` costs an extra task and body stream per request."""

    def __init__(self, app: Any, replica: Callable[[], PredictHandler | None]) -> None:
        self.app = app
        self.replica = replica
        self._handler: PredictHandler | None = None  # a process serves one replica: found once, kept

    def _serving(self) -> PredictHandler | None:
        if self._handler is None:
            self._handler = self.replica()
        return self._handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        arrived = scope.setdefault("state", {})["arrived"] = time.perf_counter()
        match = PREDICT_PATH.fullmatch(route_path(scope)) if scope["method"] == "POST" else None
        handler = self._serving() if match else None
        if match is None or handler is None:
            return await self.app(scope, receive, send)
        body = await _body(receive)
        if body is None:
            return None  # the client left before sending its body: no one to answer
        request = parsed(scope, body)
        if request is None:
            return await self.app(scope, _replay(body, receive), send)
        timing = any(name == _TIMING for name, _ in scope["headers"])
        status, answer, headers = await handler.predict_http(match["model"], *request, arrived, timing)
        extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        length = str(len(answer)).encode()
        response = [(b"content-length", length), (b"content-type", b"application/json"), *extra]
        await send({"type": "http.response.start", "status": status, "headers": response})
        await send({"type": "http.response.body", "body": answer})
        return None


def error_body(detail: str) -> bytes:
    """FastAPI's body for an HTTPException, byte for byte (its JSONResponse's compact, non-ASCII-keeping JSON)."""
    return json.dumps({"detail": detail}, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def _body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives FastAPI the body already read, then the connection's own messages."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> dict[str, Any]:
        return pending.pop() if pending else await receive()

    return replayed


__all__ = ["PREDICT_PATH", "PREDICT_ROUTE", "PredictFastPath", "PredictHandler", "error_body", "parsed", "route_path"]
