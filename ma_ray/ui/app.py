"""The ma-ray web UI: a FastAPI app of server-rendered pages over the same Python APIs the CLI uses. Mounted at
``/ui`` by the Serve application `apps.ui` and by `ma-ray ui` (embedded defaults, no servers). Every asset ships
in the package; user-given names are escaped by the templates (Jinja2 autoescape)."""

from __future__ import annotations

import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ma_ray.config import Settings
from ma_ray.gallery import Gallery, GalleryError, admin_refusal, error_status
from ma_ray.jobs import JobStore, open_job_store
from ma_ray.palette import Direction, FeatureRegistry
from ma_ray.palette.meta_store import MetaStore, open_meta_store
from ma_ray.palette.offline import OfflineStore
from ma_ray.palette.streaming import HealthBoard, open_health_board
from ma_ray.ui import views
from ma_ray.ui.csrf import COOKIE, FIELD, csrf_problem, new_token
from ma_ray.ui.serving import latency_table, serve_pool_states, staleness_table

HERE = Path(__file__).parent
PAGES = ("features", "lineage", "models", "jobs", "serving")


@dataclass
class Backends:
    """What the pages read, opened once; a lock keeps one page's reads from interleaving with another's."""

    registry: FeatureRegistry
    gallery: Gallery
    jobs: JobStore
    offline: OfflineStore
    board: HealthBoard
    meta: MetaStore
    admin_token: str | None
    metrics_urls: Callable[[], list[str]]
    pool_states: Callable[[], list[tuple[str, list[dict[str, Any]]]]]

    @classmethod
    def open(
        cls,
        settings: Settings,
        metrics_urls: Callable[[], list[str]],
        pool_states: Callable[[], list[tuple[str, list[dict[str, Any]]]]],
    ) -> Backends:
        meta = open_meta_store(settings)
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        return cls(
            FeatureRegistry(meta),
            Gallery.from_settings(settings),
            open_job_store(settings),
            OfflineStore(settings.offline_uri),
            open_health_board(settings),
            meta,
            token,
            metrics_urls,
            pool_states,
        )

    def close(self) -> None:
        self.gallery.close()
        self.jobs.close()
        self.meta.close()


def ray_metrics_urls() -> list[str]:
    """Every live Ray node's metrics endpoint (where the prediction service's histograms are exported); none
    when this process has no Ray."""
    import ray

    if not ray.is_initialized():
        return []
    return [
        f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
        for node in ray.nodes()  # type: ignore[no-untyped-call]  # unannotated in Ray
        if node.get("Alive") and node.get("MetricsExportPort")
    ]


def _duration(seconds: float) -> str:
    """An age as people read it: 850 ms, 42 s, 12 min, 5.5 h, 28 d."""
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1000:.3g} ms"


def _size(count: float) -> str:
    """A byte count as people read it: 512 B, 16.3 KiB, 1.2 GiB."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count:.0f} B"


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


class UiState:
    """The app's backends, its templates, and a lock that keeps one page's reads from interleaving with
    another's (the pages are small; the stores need not be thread-safe across requests)."""

    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.lock = threading.Lock()
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
        env.filters["timestamp"] = _timestamp
        env.filters["duration"] = _duration
        env.filters["size"] = _size
        env.filters["aggregation"] = views.aggregation_text
        self.templates = Jinja2Templates(env=env)

    @contextmanager
    def reading(self) -> Iterator[Backends]:
        with self.lock:
            yield self.backends


def _ui(request: Request) -> UiState:
    state: UiState = request.app.state.ui
    return state


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


def page(request: Request, name: str, data: dict[str, Any], status: int = 200) -> Response:
    """``name``.html with ``data``; sets this browser's CSRF cookie (kept when it has one)."""
    token = request.cookies.get(COOKIE) or new_token()
    context = {"base": _base(request), "page": name, "csrf": token, **data}
    response: Response = _ui(request).templates.TemplateResponse(request, f"{name}.html", context, status_code=status)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
    return response


def failed(request: Request, error: Exception, status: int | None = None) -> Response:
    """The error page: 404 for an unknown name, a Gallery error's own status otherwise."""
    status = status or (404 if isinstance(error, LookupError) else error_status(error))
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    title = "not found" if status == 404 else "refused" if status in (401, 403) else "error"
    return page(request, "error", {"message": message, "title": title}, status)


router = APIRouter()


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    return RedirectResponse(f"{_base(request)}/features")


@router.get("/features", response_class=HTMLResponse)
def features(request: Request, q: str = "") -> Response:
    with _ui(request).reading() as b:
        return page(request, "features", views.features_page(b.registry, q))


@router.get("/features/{catalog}/{group}", response_class=HTMLResponse)
def group(request: Request, catalog: str, group: str, version: int | None = None) -> Response:
    try:
        with _ui(request).reading() as b:
            data = views.group_page(b.registry, b.offline, b.board, catalog, group, version)
    except (LookupError, ValueError) as error:
        return failed(request, error, 404)
    texts, urls, _ = read_metrics(_ui(request).backends)
    served_age = staleness_table(texts).get(f"{catalog}.{group}")
    return page(request, "group", {**data, "served_age": served_age, "metrics_urls": urls})


@router.get("/lineage", response_class=HTMLResponse)
def lineage(request: Request, node: str = "", direction: Direction = Direction.DOWNSTREAM) -> Response:
    with _ui(request).reading() as b:
        if node:
            return page(request, "lineage", views.lineage_page(b.registry, node, direction))
        groups = [(c, g.name) for c in b.registry.catalogs() for g in b.registry.repository(c).groups]
    return page(request, "lineage", {"node": "", "groups": groups, "direction": direction.value})


@router.get("/models", response_class=HTMLResponse)
def models(request: Request) -> Response:
    with _ui(request).reading() as b:
        return page(request, "models", views.models_page(b.gallery))


@router.get("/models/{name}", response_class=HTMLResponse)
def model(request: Request, name: str, notice: str = "") -> Response:
    try:
        with _ui(request).reading() as b:
            data = views.model_page(b.gallery, name)
    except (GalleryError, KeyError) as error:
        return failed(request, error)
    return page(request, "model", {**data, "notice": notice})


@router.post("/models/{name}/aliases/{alias}", response_class=HTMLResponse)
def alias_write(
    request: Request,
    name: str,
    alias: str,
    action: Annotated[str, Form(pattern="^(set|rollback)$")],
    token: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form(alias=FIELD)] = "",
    version: Annotated[int | None, Form(ge=1)] = None,
    expected: Annotated[int | None, Form(ge=1)] = None,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Set (compare-and-set on ``expected``, as the admin API) or roll back an alias: needs the admin token and
    this browser's CSRF token."""
    ui = _ui(request)
    headers = request.headers
    problem = csrf_problem(request.cookies.get(COOKIE), csrf_token, headers.get("origin"), headers.get("host"))
    if problem:
        return failed(request, PermissionError(problem), 403)
    refusal = admin_refusal(ui.backends.admin_token, f"Bearer {token}")
    if refusal:
        return failed(request, PermissionError(refusal[1]), refusal[0])
    try:
        with ui.reading() as b:
            if action == "rollback":
                event = b.gallery.rollback(name, alias)
            else:
                event = b.gallery.set_alias(name, alias, version, expected, reason or "set in the UI")
    except (GalleryError, KeyError) as error:
        return failed(request, error)
    notice = urllib.parse.quote(f"{alias}: version {event.from_version} -> {event.to_version}")
    return RedirectResponse(f"{_base(request)}/models/{urllib.parse.quote(name)}?notice={notice}", status_code=303)


@router.get("/jobs", response_class=HTMLResponse)
def jobs(request: Request) -> Response:
    with _ui(request).reading() as b:
        return page(request, "jobs", views.jobs_page(b.jobs))


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job(request: Request, job_id: str) -> Response:
    try:
        with _ui(request).reading() as b:
            data = views.job_page(b.jobs, job_id)
    except KeyError as error:
        return failed(request, error)
    return page(request, "job", data)


def read_metrics(backends: Backends) -> tuple[list[str], list[str], list[str]]:
    """(exposition texts, endpoints asked, endpoints that did not answer) of the Ray metrics endpoints."""
    urls = backends.metrics_urls()
    texts, unreachable = [], []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                texts.append(answer.read().decode())
        except OSError as error:
            unreachable.append(f"{url}: {error}")
    return texts, urls, unreachable


@router.get("/serving", response_class=HTMLResponse)
def serving(request: Request) -> Response:
    texts, urls, unreachable = read_metrics(_ui(request).backends)
    data = {"rows": latency_table(texts), "urls": urls, "unreachable": unreachable}
    return page(request, "serving", {**data, "pools": _ui(request).backends.pool_states()})


def build_ui(
    settings: Settings,
    metrics_urls: Callable[[], list[str]] = ray_metrics_urls,
    pool_states: Callable[[], list[tuple[str, list[dict[str, Any]]]]] = serve_pool_states,
) -> FastAPI:
    """The UI app; its links are relative to where it is mounted (the request's ``root_path``). The Serving page
    reads ``metrics_urls`` (Prometheus text) and ``pool_states`` (each pool replica's state)."""
    backends = Backends.open(settings, metrics_urls, pool_states)
    app = FastAPI(title="ma-ray UI", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ui = UiState(backends)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
    app.router.on_shutdown.append(backends.close)
    return app
