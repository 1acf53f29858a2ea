"""`:predict`'s fast path answers as the FastAPI route does, and hands FastAPI every request it cannot take as it
is, with the body it already read."""

from __future__ import annotations

import asyncio
import json
import types
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.responses import JSONResponse

from apps.prediction.errors import ModelLoadError
from apps.prediction.fast_path import PredictFastPath, error_body, parsed, route_path
from apps.prediction.front import FrontReplica
from apps.prediction.schemas import PredictQuery, PredictRequest

pytestmark = pytest.mark.unit

ROW = {"driver_id": "drv_1", "surge": 1.5}
BODY = json.dumps({"rows": [ROW]}).encode()


class FakeFront:
    """The parts of a front replica `predict_http` uses, with a canned pool answer."""

    name = "ModelPoolTier1"
    predict_http = FrontReplica.predict_http

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None, str, list[dict[str, Any]]]] = []

    async def _serve(self, model: str, version: int | None, alias: str, rows: list) -> tuple[int, dict, list[str]]:
        self.calls.append((model, version, alias, rows))
        if model == "missing":
            raise KeyError("model 'missing' is not registered")
        if model == "broken":
            raise ModelLoadError("model broken:2 failed to load: corrupted")
        answer = {"predictions": [0.5] * len(rows), "degraded": False, "stream_fallback": [], "timing_ms": {}}
        return version or 3, answer, []

    def _observe(self, timing: dict[str, float]) -> None:
        pass


def _scope(path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json")] if headers is None else headers
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }


def _call(app: Any, scope: dict[str, Any], body: bytes, chunks: int = 1) -> tuple[int, dict[bytes, bytes], bytes]:
    parts = [body[len(body) * i // chunks : len(body) * (i + 1) // chunks] for i in range(chunks)]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, answer = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), answer


class Inner:
    """Stands for FastAPI behind the fast path: records what reached it and the body it could read."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})


def test_a_valid_predict_is_answered_without_fastapi_in_one_or_several_body_chunks() -> None:
    inner, front = Inner(), FakeFront()
    app = PredictFastPath(inner, replica=lambda: front)
    for chunks in (1, 3):
        status, headers, body = _call(app, _scope("/v1/models/eta:predict", b"version=2&alias=staging"), BODY, chunks)
        assert status == 200 and headers[b"content-type"] == b"application/json"
        assert int(headers[b"content-length"]) == len(body)
        assert json.loads(body)["predictions"] == [0.5] and json.loads(body)["version"] == 2
    assert inner.bodies == [] and front.calls[-1] == ("eta", 2, "staging", [ROW])


def test_the_serving_replica_is_looked_up_once_and_no_query_means_the_defaults() -> None:
    front, lookups = FakeFront(), []
    app = PredictFastPath(Inner(), replica=lambda: lookups.append(1) or front)
    for _ in range(3):
        assert _call(app, _scope("/v1/models/eta:predict"), BODY)[0] == 200
    assert lookups == [1] and front.calls[-1] == ("eta", None, "production", [ROW])


@pytest.mark.parametrize(
    ("query", "body", "content_type"),
    [
        (b"", b'{"rows": [', b"application/json"),  # not JSON
        (b"", json.dumps({"rows": []}).encode(), b"application/json"),  # invalid body
        (b"version=0", BODY, b"application/json"),  # invalid query
        (b"version=", BODY, b"application/json"),  # blank values are kept, as Starlette keeps them
        (b"", BODY, b"text/plain"),  # FastAPI does not read it as JSON
        (b"", BODY, b"application/merge-patch+json"),  # FastAPI does; this path leaves it to FastAPI
        (b"", b"", b"application/json"),  # no body
    ],
)
def test_what_it_cannot_take_goes_to_fastapi_with_the_body_replayed(
    query: bytes, body: bytes, content_type: bytes
) -> None:
    inner, front = Inner(), FakeFront()
    app = PredictFastPath(inner, replica=lambda: front)
    status, _, answer = _call(app, _scope("/v1/models/eta:predict", query, [(b"content-type", content_type)]), body)
    assert (status, answer, inner.bodies, front.calls) == (299, b"inner", [body], [])


@pytest.mark.parametrize(
    ("path", "method", "replica"),
    [
        ("/v1/models/eta:predict", "POST", None),
        ("/v2/models/eta/infer", "POST", FakeFront()),
        ("/v1/models/eta:predict", "GET", FakeFront()),
    ],
    ids=["outside a replica", "another route", "another method"],
)
def test_other_requests_pass_through_untouched(path: str, method: str, replica: FakeFront | None) -> None:
    inner = Inner()
    scope = {**_scope(path), "method": method}
    assert _call(PredictFastPath(inner, replica=lambda: replica), scope, BODY)[0] == 299
    assert inner.bodies == [BODY] and "arrived" in scope["state"]


def test_a_client_gone_before_its_body_gets_no_answer() -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(PredictFastPath(Inner(), replica=FakeFront)(_scope("/v1/models/eta:predict"), receive, send))
    assert sent == []


def test_the_query_and_path_read_as_starlette_and_fastapi_read_them() -> None:
    scope = _scope("/v1/models/eta:predict", b"alias=a&alias=b&unknown=1&version=7")
    query, request = parsed(scope, BODY) or (None, None)
    assert query == PredictQuery(version=7, alias="b") and request == PredictRequest(rows=[ROW])
    assert route_path({"path": "/predict/v1/models/eta:predict", "root_path": "/predict"}) == "/v1/models/eta:predict"
    assert route_path({"path": "/v1/models/eta:predict", "root_path": ""}) == "/v1/models/eta:predict"


@pytest.mark.parametrize("detail", ["model 'eta' has no alias \"x\"", "é ünïcode", "tabs\tand\nnewlines"])
def test_error_bodies_are_fastapis_byte_for_byte(detail: str) -> None:
    error = HTTPException(404, detail)
    assert error_body(detail) == JSONResponse({"detail": error.detail}, status_code=404).body


@pytest.fixture
def fastapi_app(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, FakeFront]:
    """The real app, its class-based routes and its fast path both given the fake front as the serving replica."""
    from ray import serve

    from apps.prediction.http import api

    front = FakeFront()
    monkeypatch.setattr(serve, "get_replica_context", lambda: types.SimpleNamespace(servable_object=front))
    monkeypatch.setattr(api, "middleware_stack", None)  # built afresh: the fast path keeps the replica it found
    return api, front


@pytest.mark.parametrize(
    ("path", "query", "timing"),
    [
        ("/v1/models/eta:predict", b"", False),
        ("/v1/models/eta:predict", b"version=5", True),
        ("/v1/models/missing:predict", b"", False),  # 404 from the replica
        ("/v1/models/broken:predict", b"alias=canary", False),  # 503
    ],
)
def test_the_fast_path_and_the_fastapi_route_answer_alike(
    fastapi_app: tuple[Any, FakeFront], path: str, query: bytes, timing: bool
) -> None:
    api, front = fastapi_app
    answers = []
    for content_type in (b"application/json", b"application/merge-patch+json"):  # fast path; FastAPI's route
        headers = [(b"content-type", content_type)] + ([(b"x-ma-timing", b"1")] if timing else [])
        status, answer_headers, body = _call(api, _scope(path, query, headers), BODY)
        answer = json.loads(body)
        answer.pop("timing_ms", None)
        timing_header = answer_headers.get(b"x-ma-timing", b"")
        answers.append((status, answer_headers[b"content-type"], answer, timing_header.split(b";")[0]))
    assert answers[0] == answers[1]
    assert len(front.calls) == 2 and front.calls[0] == front.calls[1]


def test_serve_names_a_predict_request_at_its_first_route() -> None:
    """Serve tags each request with its route by matching the app's routes in order (`get_asgi_route_name`, over
    the route tree `_walk_fastapi_routes` walks): `:predict` is the first of the class's routes, and every route
    still names itself."""
    from ray.serve._private.http_util import _walk_fastapi_routes
    from ray.serve._private.thirdparty.get_asgi_route_name import get_asgi_route_name

    from apps.prediction.front import PREDICT_ROUTE
    from apps.prediction.http import api

    class_routes = [route.path for route, _, _ in _walk_fastapi_routes(api) if route.path.startswith(("/v1", "/v2"))]
    assert class_routes[0] == PREDICT_ROUTE and len(class_routes) == 10
    assert get_asgi_route_name(api, _scope("/v1/models/eta:predict")) == PREDICT_ROUTE
    assert get_asgi_route_name(api, _scope("/v2/models/eta/infer")) == "/v2/models/{model}/infer"
    # ... and the node that holds the class's routes comes before FastAPI's documentation routes, which still name
    # themselves
    from fastapi.routing import _IncludedRouter

    assert isinstance(api.router.routes[0], _IncludedRouter)
    for docs in ("/openapi.json", "/docs", "/redoc"):
        assert get_asgi_route_name(api, {**_scope(docs), "method": "GET"}) == docs


def test_route_first_refuses_a_path_the_app_lacks() -> None:
    from apps.prediction.http import api, route_first

    with pytest.raises(ValueError, match="no route '/v9/nothing'"):
        route_first(api, "/v9/nothing")
