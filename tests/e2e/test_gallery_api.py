"""Gallery's admin HTTP API on Ray Serve: open reads, bearer-token writes, errors as 4xx with a message."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import requests
from fastapi import HTTPException
from ray import serve

from apps.gallery_api import AdminGallery, GalleryAdminAPI
from ma_ray.config import load_settings
from ma_ray.gallery import Gallery
from tests.ports import free_port

TOKEN = "test-admin-token"


def booster(seed: int) -> object:
    import xgboost as xgb

    x = np.random.default_rng(seed).random((32, 3))
    return xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(x, label=x.sum(axis=1)), num_boost_round=2)


@pytest.fixture(scope="module")
def admin_url(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    overrides = {"state_dir": tmp_path_factory.mktemp("gallery_api"), "admin_token": TOKEN}
    gallery = Gallery.from_settings(load_settings(**overrides))
    gallery.register_model(name="eta", owner="maps", tier=1, framework="xgboost")
    for seed in range(2):
        gallery.log_model("eta", booster(seed), metrics={"rmse": 1.0 + seed})
    gallery.set_alias("eta", "production", 1)
    gallery.close()
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(GalleryAdminAPI.bind(overrides), name="gallery", route_prefix="/gallery")
    try:
        yield f"http://127.0.0.1:{port}/gallery/v1/admin/models"
    finally:
        serve.delete("gallery")
        serve.shutdown()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_reads_are_open(admin_url: str) -> None:
    assert [m["name"] for m in requests.get(admin_url, timeout=30).json()] == ["eta"]
    described = requests.get(f"{admin_url}/eta", timeout=30).json()
    assert described["aliases"] == {"production": 1} and described["tier"] == 1
    assert [v["version"] for v in requests.get(f"{admin_url}/eta/versions", timeout=30).json()] == [1, 2]


def test_writes_need_the_token_and_are_compare_and_set(admin_url: str) -> None:
    alias = f"{admin_url}/eta/aliases/production"
    assert requests.put(alias, json={"version": 2}, timeout=30).status_code == 401
    assert requests.put(alias, json={"version": 2}, headers=auth("wrong"), timeout=30).status_code == 401
    stale = requests.put(alias, json={"version": 2, "expected": 7}, headers=auth(), timeout=30)
    assert stale.status_code == 409 and "changed concurrently" in stale.json()["detail"]
    moved = requests.put(alias, json={"version": 2, "expected": 1, "reason": "canary ok"}, headers=auth(), timeout=30)
    assert moved.status_code == 200 and moved.json()["to_version"] == 2
    rolled = requests.post(f"{alias}:rollback", headers=auth(), timeout=30)
    assert rolled.status_code == 200 and rolled.json()["to_version"] == 1
    history = requests.get(alias, timeout=30).json()
    assert history["version"] == 1 and [e["to_version"] for e in history["history"]] == [1, 2, 1]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/nope", None, 404),
        ("put", "/nope/aliases/production", {"version": 1}, 404),
        ("put", "/eta/aliases/production", {"version": 99}, 404),
        ("put", "/eta/aliases/Bad Alias!", {"version": 1}, 400),
        ("put", "/eta/aliases/production", {"version": 0}, 422),
        ("post", "/eta/aliases/staging:rollback", None, 409),
    ],
)
def test_bad_requests(admin_url: str, method: str, path: str, body: dict | None, status: int) -> None:
    response = requests.request(method, admin_url + path, json=body, headers=auth(), timeout=30)
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text


def test_without_a_configured_token_writes_are_refused() -> None:
    with pytest.raises(HTTPException) as refused:
        AdminGallery(gallery=None, token=None).authorize(f"Bearer {TOKEN}")  # type: ignore[arg-type]
    assert refused.value.status_code == 403 and "MA_RAY_ADMIN_TOKEN" in refused.value.detail
