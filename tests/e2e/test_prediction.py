"""The prediction service on Ray Serve, end to end: Gallery alias -> multiplexed pool -> Palette features ->
DSL transforms -> XGBoost, through Serve's HTTP proxy."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
import requests
from ray import serve

from apps.prediction import build_app
from ma_ray.config import load_settings
from ma_ray.gallery import Gallery, InputSignature
from tests.ports import free_port
from tests.rideshare_data import load_sample

TRIPS = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"
ACCEPT = "@palette:rideshare:driver_stats:acceptance_rate:driver_id"
RELIABILITY = "@palette:rideshare:driver_model_inputs:reliability_score:driver_id"
SIGNATURE = InputSignature(
    features=(TRIPS, ACCEPT, RELIABILITY),
    transforms={"peak": "hour(@basis:request_ts) in [7, 8, 9, 17, 18, 19]", "log_trips": f"log1p({TRIPS})"},
)
REQUEST_TS = "2026-01-07T08:30:00+00:00"


def train(seed: int) -> object:
    import xgboost as xgb

    x = np.random.default_rng(seed).random((256, 5)) * [300, 1, 1, 1, 6]
    y = x[:, 0] / 100 + 2 * x[:, 1] - x[:, 3] + seed
    return xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(x, label=y), num_boost_round=5)


@pytest.fixture(scope="module")
def service(ray_cluster: str, raw_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    overrides = {"state_dir": tmp_path_factory.mktemp("prediction")}
    snapshot = load_sample(load_settings(**overrides), raw_uri, batch_rows=5000)
    gallery = Gallery.from_settings(load_settings(**overrides))
    gallery.register_model(name="eta", owner="maps", tier=1, framework="xgboost")
    boosters = {1: train(0), 2: train(1)}
    for booster in boosters.values():
        gallery.log_model("eta", booster, signature=SIGNATURE)
    gallery.set_alias("eta", "production", 1)
    gallery.close()
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"settings": overrides}), name="prediction", route_prefix="/predict")
    try:
        yield f"http://127.0.0.1:{port}/predict/v1/models", {"snapshot": snapshot, "boosters": boosters}
    finally:
        serve.delete("prediction")
        serve.shutdown()


def expected(context: dict, driver: str, version: int) -> float:
    stats = context["snapshot"].loc[driver]
    reliability = stats["acceptance_rate"] * (1 - stats["cancellation_rate"])
    hour_peak = datetime.fromisoformat(REQUEST_TS).astimezone(UTC).hour in (7, 8, 9, 17, 18, 19)
    row = [
        stats["trip_count_7d"],
        stats["acceptance_rate"],
        reliability,
        float(hour_peak),
        math.log1p(stats["trip_count_7d"]),
    ]
    return float(context["boosters"][version].inplace_predict(np.array([row], dtype=np.float64))[0])


def test_predict_by_alias_and_pinned_version(service: tuple[str, dict]) -> None:
    url, context = service
    drivers = list(context["snapshot"].index[:3])
    body = {"rows": [{"driver_id": d, "request_ts": REQUEST_TS} for d in drivers]}
    response = requests.post(f"{url}/eta:predict", json=body, timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["version"] == 1 and not answer["degraded"]
    assert answer["predictions"] == pytest.approx([expected(context, d, 1) for d in drivers], rel=1e-5)
    assert {"routing", "feature_lookup", "transform_and_inference"} <= set(answer["timing_ms"])
    pinned = requests.post(f"{url}/eta:predict?version=2", json=body, timeout=60).json()
    assert pinned["version"] == 2
    assert pinned["predictions"] == pytest.approx([expected(context, d, 2) for d in drivers], rel=1e-5)


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/nope:predict", {"rows": [{"driver_id": "d"}]}, 404, "nope"),
        ("/eta:predict?alias=staging", {"rows": [{"driver_id": "d"}]}, 404, "staging"),
        ("/eta:predict?version=9", {"rows": [{"driver_id": "d"}]}, 404, "9"),
        ("/eta:predict", {"rows": [{"rider_id": "r", "request_ts": REQUEST_TS}]}, 400, "driver_id"),
        ("/eta:predict", {"rows": []}, 422, "at least 1"),
        ("/eta:predict", {"rows": [{"driver_id": "d"}], "extra": 1}, 422, "Extra inputs"),
    ],
)
def test_bad_requests(service: tuple[str, dict], path: str, body: dict, status: int, fragment: str) -> None:
    response = requests.post(service[0] + path, json=body, timeout=60)
    assert response.status_code == status, response.text
    assert fragment in response.text and "Traceback" not in response.text
