"""The HTTP feature API on Ray Serve, through Serve's real HTTP proxy."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

import pytest
import requests
from ray import serve

from apps.feature_api import MAX_ROWS, FeatureAPI
from ma_ray.config import load_settings
from ma_ray.datagen import write_chunk, write_dimensions
from ma_ray.datagen.rideshare_features import driver_stats
from ma_ray.palette.materialize import load_snapshot
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.palette.online import OnlineTable, open_online_store
from ma_ray.palette.registry import FeatureRegistry
from ma_ray.palette.repository import load_repository
from tests.integration.test_feature_serving import AS_OF, CONFIG
from tests.ports import free_port

TRIPS_7D = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"
PEAK = "@palette:rideshare:driver_model_inputs:peak_hour_request:driver_id"


@pytest.fixture(scope="module")
def api_url(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    state = tmp_path_factory.mktemp("api")
    settings = load_settings(state_dir=state)
    raw = str(state / "raw")
    write_dimensions(CONFIG, raw)
    for chunk in range(CONFIG.chunks):
        write_chunk(CONFIG, chunk, raw)
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        repo = load_repository(path)
    meta = open_meta_store(settings)
    FeatureRegistry(meta).apply(repo)
    meta.close()
    snapshot = driver_stats(raw, AS_OF)
    online = open_online_store(settings)
    load_snapshot(snapshot, OnlineTable.of(repo, repo.groups[0]), online, "driver_id")
    online.close()
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(FeatureAPI.bind("rideshare", settings.model_dump()), name="features", route_prefix="/features")
    expected = {row["driver_id"]: row for row in snapshot.to_pylist()}
    try:
        yield f"http://127.0.0.1:{port}/features", expected
    finally:
        serve.delete("features")
        serve.shutdown()


def test_features_by_entity_keys(api_url: tuple[str, dict]) -> None:
    url, expected = api_url
    driver = sorted(expected)[0]
    body = {
        "rows": [
            {"driver_id": driver, "request_ts": "2026-01-07T08:15:00+00:00"},
            {"driver_id": "nobody", "request_ts": "2026-01-07T12:00:00"},
        ],
        "features": [TRIPS_7D, PEAK],
    }
    response = requests.post(f"{url}/v1/features:get", json=body, timeout=30)
    assert response.status_code == 200, response.text
    known, unknown = response.json()["rows"]
    assert known[TRIPS_7D]["value"] == expected[driver]["trip_count_7d"]
    assert known[TRIPS_7D]["tier"] == "sqlite" and known[TRIPS_7D]["stale"] is True
    assert known[PEAK]["value"] is True and unknown[PEAK]["value"] is False
    assert unknown[TRIPS_7D] == {
        "value": 0,
        "feature_ts": None,
        "staleness_s": None,
        "tier": "none",
        "defaulted": True,
        "stale": False,
    }


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (
            {"rows": [{"driver_id": "d"}], "features": ["@palette:rideshare:driver_stats:nope:driver_id"]},
            404,
            "unknown feature reference",
        ),
        ({"rows": [{"rider_id": "r"}], "features": [TRIPS_7D]}, 400, "lacks 'driver_id'"),
        ({"rows": [{"driver_id": "d", "request_ts": "yesterday"}], "features": [PEAK]}, 400, "ISO-8601"),
        ({"rows": [{"driver_id": "d"}] * (MAX_ROWS + 1), "features": [TRIPS_7D]}, 422, "at most 1000"),
        ({"rows": [], "features": [TRIPS_7D]}, 422, "at least 1"),
        ({"rows": [{"driver_id": "d"}], "features": [TRIPS_7D], "extra": 1}, 422, "Extra inputs"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(api_url: tuple[str, dict], body: dict, status: int, fragment: str) -> None:
    response = requests.post(f"{api_url[0]}/v1/features:get", json=body, timeout=30)
    assert response.status_code == status
    assert fragment in response.text
    assert "Traceback" not in response.text


def test_malformed_json_and_openapi(api_url: tuple[str, dict]) -> None:
    url = api_url[0]
    broken = requests.post(
        f"{url}/v1/features:get", data="{not json", timeout=30, headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    schema = requests.get(f"{url}/openapi.json", timeout=30).json()
    assert "/v1/features:get" in schema["paths"]
    assert requests.get(f"{url}/docs", timeout=30).status_code == 200
