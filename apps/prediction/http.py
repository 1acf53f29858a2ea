"""The prediction service's FastAPI app: what every route shares (arrival stamps, the 422 body).

No `from __future__ import annotations` here: FastAPI reads the real annotations."""

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

api = FastAPI(title="ma-ray prediction service", version="1", description="Online predictions by model alias.")


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
