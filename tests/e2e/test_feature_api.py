"""The HTTP feature API on Ray Serve, through Serve's real HTTP proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from ray import serve

from apps.feature_api import MAX_ROWS, FeatureAPI
from ma_ray.config import load_settings
from tests.ports import free_port
from tests.rideshare_data import load_sample

TRIPS_7D = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"
PEAK = "@palette:rideshare:driver_model_inputs:peak_hour_request:driver_id"


@pytest.fixture(scope="module")
def api_url(ray_cluster: str, raw_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    settings = load_settings(state_dir=tmp_path_factory.mktemp("api"))
    snapshot = load_sample(settings, raw_uri, batch_rows=5000)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(FeatureAPI.bind("rideshare", settings.model_dump()), name="features", route_prefix="/features")
    expected = {driver: row for driver, row in snapshot.to_dict("index").items()}
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
        "batch_fallback": False,
    }
    assert response.json()["stream_fallback"] == []  # no streaming group asked for


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (
            {"rows": [{"driver_id": "d"}], "features": ["@palette:rideshare:driver_stats:nope:driver_id"]},
            404,
            "unknown feature reference",
        ),
        ({"rows": [{"rider_id": "r"}], "features": [TRIPS_7D]}, 400, "lacks 'driver_id'"),
        ({"rows": [{"driver_id": 42}], "features": [TRIPS_7D]}, 400, "'driver_id' must be a string, got 42"),
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
