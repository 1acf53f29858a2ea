"""The web UI's pages over real embedded stores, served by uvicorn as `ma-ray ui` serves them: each page's key
content, names and descriptions holding markup shown as text, and alias writes that need the admin token, this
browser's CSRF token and a same-origin request, with the admin API's compare-and-set."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import requests
import uvicorn
import xgboost as xgb
from fastapi import FastAPI

from ma_ray.config import Settings, load_settings
from ma_ray.gallery import Gallery
from ma_ray.jobs import JobRecord, JobState, open_job_store
from ma_ray.palette import FeatureRegistry
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.ui import build_ui
from tests.polling import wait_for
from tests.ports import free_port
from tests.rideshare_data import sample_repository

pytestmark = pytest.mark.integration
MARKUP = '<script>alert("x")</script><b onmouseover="alert(1)">bold</b>'
TOKEN = "ui-admin-token"


@dataclass
class Ui:
    url: str
    settings: Settings
    job_id: str


def booster(seed: int) -> object:
    x = np.random.default_rng(seed).random((64, 3))
    return xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(x, label=x[:, 0] + seed), num_boost_round=3)


def seed_state(settings: Settings) -> str:
    """The sample catalog at two schema versions (one feature added, one described with markup), a model with
    three versions and an alias moved twice, and a finished job with a training history."""
    repo = sample_repository()
    meta = open_meta_store(settings)
    registry = FeatureRegistry(meta)
    registry.apply(repo)
    group = next(g for g in repo.groups if g.name == "driver_stats")
    extra = group.features[0].model_copy(update={"name": "trip_count_90d", "description": MARKUP})
    changed = group.model_copy(update={"features": (*group.features, extra), "description": MARKUP})
    registry.apply(repo.model_copy(update={"groups": tuple(changed if g is group else g for g in repo.groups)}))
    meta.close()
    gallery = Gallery.from_settings(settings)
    gallery.register_model(name="eta", owner="maps", tier=1, framework="xgboost", description=MARKUP,
                           tags={"team": MARKUP})  # fmt: skip
    for seed in range(3):
        gallery.log_model("eta", booster(seed), metrics={"rmse": 1.0 / (seed + 1)}, description=MARKUP)
    gallery.set_alias("eta", "production", 1)
    gallery.set_alias("eta", "production", 2, expected=1)
    gallery.close()
    store = open_job_store(settings)
    record = JobRecord("eta-0001", {"name": "eta", "framework": "xgboost"}, state=JobState.SUCCEEDED, tier=1,
                       attempt=1, model_version="eta:2", message=MARKUP)  # fmt: skip
    store.put(record)
    store.add_event(record.job_id, "submitted")
    history = [{"step": float(s), "train-rmse": 3.0 / s, "valid-rmse": 3.5 / s} for s in range(1, 6)]
    store.put_outcome(record.job_id, 1, {"status": "succeeded", "history": history, "checkpoints": ["c/5"],
                                         "resumed_from_step": 0, "final_step": 5})  # fmt: skip
    store.close()
    return record.job_id


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    settings = load_settings(state_dir=tmp_path_factory.mktemp("ui_state"), admin_token=TOKEN)
    job_id = seed_state(settings)
    root = FastAPI()
    root.mount("/ui", build_ui(settings, metrics_urls=list, pool_states=list))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "the UI server starting")
    try:
        yield Ui(f"http://127.0.0.1:{port}/ui", settings, job_id)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def get(ui: Ui, path: str, session: requests.Session | None = None) -> requests.Response:
    started = time.perf_counter()
    response = (session or requests).get(f"{ui.url}{path}", timeout=10)
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    assert time.perf_counter() - started < 30  # a hang shows as a failure, not a timeout of the suite
    return response


def test_every_page_shows_its_key_content(ui: Ui) -> None:
    features = get(ui, "/features").text
    assert "rideshare.driver_stats" in features and "trip_count_7d" in features
    assert "trip_count_7d" in get(ui, "/features?q=7d").text and "acceptance_rate" not in get(ui, "/features?q=7d").text
    group = get(ui, "/features/rideshare/driver_stats").text
    assert "v2 of 2" in group and 'id="diff"' in group and "trip_count_90d" in group and "added" in group
    assert "no Ray here" in group  # served values' age comes from the cluster's metrics
    assert "v1 of 2" in get(ui, "/features/rideshare/driver_stats?version=1").text
    lineage = get(ui, "/lineage?node=group:rideshare:driver_stats&direction=downstream").text
    assert 'id="lineage-graph"' in lineage and "@palette:rideshare:driver_stats:trip_count_7d:driver_id" in lineage
    assert "group:rideshare:driver_stats" in get(ui, "/lineage").text
    models = get(ui, "/models").text
    assert "eta" in models and "production → v2" in models
    model = get(ui, "/models/eta").text
    assert 'id="alias-production"' in model and "v1 → <b>v2</b>" in model and "rmse" in model
    jobs = get(ui, "/jobs").text
    assert ui.job_id in jobs and "Tier 1" in jobs
    job = get(ui, f"/jobs/{ui.job_id}").text
    assert 'id="training-curve"' in job and "train-rmse" in job and "valid-rmse" in job and "c/5" in job
    serving = get(ui, "/serving").text
    assert 'id="no-ray"' in serving and 'id="no-pools"' in serving


def test_unknown_names_answer_404_with_what_was_asked(ui: Ui) -> None:
    for path, fragment in [("/models/nope", "nope"), ("/jobs/nope-1", "nope-1"),
                           ("/features/rideshare/nope", "nope")]:  # fmt: skip
        response = requests.get(f"{ui.url}{path}", timeout=10)
        assert response.status_code == 404 and fragment in response.text, path


def test_user_given_markup_is_shown_as_text_never_run(ui: Ui) -> None:
    pages = ["/models/eta", "/models", f"/jobs/{ui.job_id}", "/jobs", "/features/rideshare/driver_stats",
             "/features?q=" + requests.utils.quote(MARKUP)]  # fmt: skip
    for path in pages:
        html = get(ui, path).text
        assert "<script>alert" not in html and "<b onmouseover" not in html, path
        assert "&lt;script&gt;alert(" in html, path


@pytest.fixture
def browser_session(ui: Ui) -> tuple[requests.Session, str]:
    """A client that loaded the model page: it holds the CSRF cookie, and the form's copy of it."""
    session = requests.Session()
    html = get(ui, "/models/eta", session).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token is not None
    return session, token[1]


def alias_of(ui: Ui) -> int | None:
    gallery = Gallery.from_settings(ui.settings)
    try:
        return gallery.aliases("eta").get("production")
    finally:
        gallery.close()


def post_alias(ui: Ui, session: requests.Session, **form: object) -> requests.Response:
    return session.post(f"{ui.url}/models/eta/aliases/production", data=form, timeout=10, allow_redirects=False)


def test_alias_writes_need_the_csrf_token_the_admin_token_and_the_same_origin(
    ui: Ui, browser_session: tuple[requests.Session, str]
) -> None:
    session, csrf = browser_session
    before = alias_of(ui)
    cases = [
        ({"action": "rollback", "token": TOKEN}, {}, 403, "CSRF"),  # a forged form: no token
        ({"action": "rollback", "token": TOKEN, "csrf_token": "guess"}, {}, 403, "CSRF"),
        ({"action": "rollback", "token": "wrong", "csrf_token": csrf}, {}, 401, "Bearer"),
        ({"action": "rollback", "token": TOKEN, "csrf_token": csrf}, {"Origin": "https://evil.example"}, 403, "own"),
    ]
    for form, headers, status, fragment in cases:
        response = session.post(f"{ui.url}/models/eta/aliases/production", data=form, headers=headers, timeout=10)
        assert response.status_code == status and fragment in response.text, (form, headers, response.text[:300])
    stranger = requests.post(f"{ui.url}/models/eta/aliases/production", timeout=10,
                             data={"action": "rollback", "token": TOKEN, "csrf_token": csrf})  # fmt: skip
    assert stranger.status_code == 403  # the form's token without this browser's cookie
    assert alias_of(ui) == before


def test_set_is_a_compare_and_set_and_rollback_moves_back(
    ui: Ui, browser_session: tuple[requests.Session, str]
) -> None:
    session, csrf = browser_session
    current = alias_of(ui)
    assert current is not None
    moved = post_alias(ui, session, action="set", version=3, expected=current, token=TOKEN, csrf_token=csrf)
    assert moved.status_code == 303 and alias_of(ui) == 3
    assert f"version {current} -&gt; 3" in session.get(f"{ui.url}{moved.headers['location'].removeprefix('/ui')}").text
    stale = post_alias(ui, session, action="set", version=1, expected=current, token=TOKEN, csrf_token=csrf)
    assert stale.status_code == 409 and alias_of(ui) == 3  # someone moved it since the page was drawn
    back = post_alias(ui, session, action="rollback", token=TOKEN, csrf_token=csrf)
    assert back.status_code == 303 and alias_of(ui) == current
