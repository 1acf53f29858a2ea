"""The prediction service on Ray Serve, end to end: Gallery alias -> multiplexed pool -> Palette features ->
DSL transforms -> XGBoost, through Serve's HTTP proxy."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import torch
from ray import serve

from apps.prediction import build_app
from apps.prediction.open_inference_grpc import SERVICER
from ma_ray.config import load_settings
from ma_ray.gallery import Gallery, InputSignature
from ma_ray.serving.stage_timing import REQUEST_SECONDS, STAGE_SECONDS, STAGES, TIMING_HEADER, decode_timing
from ma_ray.training.trainers.tiny_lm import build_tiny_lm
from ma_ray.training.trainers.torch_trainer import mlp
from tests.browser import chromium, console_errors, screenshots, ui_server, which_cli
from tests.e2e.conftest import newcomer_env
from tests.polling import wait_for
from tests.ports import free_port
from tests.rideshare_data import load_sample
from tests.zero_checkpoint import LM_CONFIG, LM_FACTORY, zero_checkpoint

TRIPS = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"
ACCEPT = "@palette:rideshare:driver_stats:acceptance_rate:driver_id"
RELIABILITY = "@palette:rideshare:driver_model_inputs:reliability_score:driver_id"
SIGNATURE = InputSignature(
    features=(TRIPS, ACCEPT, RELIABILITY),
    transforms={"peak": "hour(@basis:request_ts) in [7, 8, 9, 17, 18, 19]", "log_trips": f"log1p({TRIPS})"},
)
REQUEST_TS = "2026-01-07T08:30:00+00:00"
APP = "prediction"
MLP_FACTORY = "ma_ray.training.trainers.torch_trainer:mlp"
SURGE_SHAPE = {"in_features": 5, "hidden": [4], "out_features": 1}
torch.manual_seed(0)
SURGE = mlp(**SURGE_SHAPE)
NEXT_CHAR = build_tiny_lm(**LM_CONFIG).eval()
# A language model's inputs are token ids: the request's hour, and 1 or 0 for peak (both inside its vocabulary).
HOUR_TOKENS = InputSignature(
    transforms={"hour": "hour(@basis:request_ts)", "peak": "hour(@basis:request_ts) in [7, 8, 9, 17, 18, 19]"}
)
PAST_VOCABULARY = InputSignature(transforms={"hour": "hour(@basis:request_ts) * 100"})


def train(seed: int) -> object:
    import xgboost as xgb

    x = np.random.default_rng(seed).random((256, 5)) * [300, 1, 1, 1, 6]
    y = x[:, 0] / 100 + 2 * x[:, 1] - x[:, 3] + seed
    return xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(x, label=y), num_boost_round=5)


@dataclass
class Service:
    url: str
    snapshot: object
    boosters: dict[int, object]
    sizes: dict[str, int] = field(default_factory=dict)
    grpc_port: int = 0
    state_dir: str = ""

    def body(self, drivers: int = 3) -> dict:
        return {"rows": [{"driver_id": d, "request_ts": REQUEST_TS} for d in self.snapshot.index[:drivers]]}


@pytest.fixture(scope="module")
def service(ray_cluster: str, raw_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """eta (tier 1, production -> 1, three versions) and promo (tier 3, three versions) in a cache that holds
    about two and a half models per replica; tier 1 is pinned all day (every hour is peak), no grace period.
    surge (tier 2, PyTorch, forecast traffic) is served by the GPU pool (no GPU here: same code on CPU)."""
    overrides = {"state_dir": tmp_path_factory.mktemp("prediction")}
    snapshot = load_sample(load_settings(**overrides), raw_uri, batch_rows=5000)
    gallery = Gallery.from_settings(load_settings(**overrides))
    gallery.register_model(name="eta", owner="maps", tier=1, framework="xgboost")
    gallery.register_model(name="promo", owner="growth", tier=3, framework="xgboost")
    boosters = {seed + 1: train(seed) for seed in range(3)}
    sizes = {}
    for model in ("eta", "promo"):
        for booster in boosters.values():
            record = gallery.log_model(model, booster, signature=SIGNATURE)
            sizes[f"{model}:{record.version}"] = record.size_bytes
    gallery.set_alias("eta", "production", 1)
    gallery.register_model(name="surge", owner="pricing", tier=2, framework="pytorch")
    gallery.log_model("surge", SURGE, signature=SIGNATURE, factory=MLP_FACTORY, factory_kwargs=SURGE_SHAPE)
    gallery.set_alias("surge", "production", 1)
    gallery.register_model(name="next_char", owner="support", tier=3, framework="deepspeed")
    checkpoint = zero_checkpoint(tmp_path_factory.mktemp("zero") / "ds", NEXT_CHAR)
    gallery.log_model("next_char", checkpoint, signature=HOUR_TOKENS, factory=LM_FACTORY, factory_kwargs=LM_CONFIG)
    gallery.log_model("next_char", checkpoint, signature=PAST_VOCABULARY, factory=LM_FACTORY,
                      factory_kwargs=LM_CONFIG)  # fmt: skip
    gallery.close()
    serving = {
        "cache_budget_mb": 2.5 * max(sizes.values()) / 1024 / 1024,
        "grace_period_s": 0,
        "peak_hours_utc": list(range(24)),
        "replicas": {"ModelPoolTier1": 1},
        "batch_wait_timeout_s": 0.05,
        "forecast_qps": {"surge": 100.0},  # tier 2 with forecast traffic: PREEMPTIVE
    }
    port, grpc_port = free_port(), free_port()
    grpc_options = {"port": grpc_port, "grpc_servicer_functions": [SERVICER]}
    serve.start(http_options={"host": "127.0.0.1", "port": port}, grpc_options=grpc_options)
    serve.run(build_app({"settings": overrides, "serving": serving}), name=APP, route_prefix="/predict")
    try:
        url = f"http://127.0.0.1:{port}/predict/v1/models"
        yield Service(url, snapshot, boosters, sizes, grpc_port, str(overrides["state_dir"]))
    finally:
        serve.delete(APP)
        serve.shutdown()


def model_row(snapshot: pd.DataFrame, driver: str) -> list[float]:
    stats = snapshot.loc[driver]
    reliability = stats["acceptance_rate"] * (1 - stats["cancellation_rate"])
    hour_peak = datetime.fromisoformat(REQUEST_TS).astimezone(UTC).hour in (7, 8, 9, 17, 18, 19)
    return [
        stats["trip_count_7d"],
        stats["acceptance_rate"],
        reliability,
        float(hour_peak),
        math.log1p(stats["trip_count_7d"]),
    ]


def expected(context: dict, driver: str, version: int) -> float:
    row = model_row(context["snapshot"], driver)
    return float(context["boosters"][version].inplace_predict(np.array([row], dtype=np.float64))[0])


def test_predict_by_alias_and_pinned_version(service: Service) -> None:
    url, context = service.url, {"snapshot": service.snapshot, "boosters": service.boosters}
    drivers = list(service.snapshot.index[:3])
    body = service.body()
    response = requests.post(f"{url}/eta:predict", json=body, timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["version"] == 1 and not answer["degraded"]
    assert answer["predictions"] == pytest.approx([expected(context, d, 1) for d in drivers], rel=1e-5)
    assert {"parsing", "routing", "transformation", "inference"} <= set(answer["timing_ms"])
    assert TIMING_HEADER not in response.headers
    pinned = requests.post(f"{url}/eta:predict?version=2", json=body, timeout=60).json()
    assert pinned["version"] == 2
    assert pinned["predictions"] == pytest.approx([expected(context, d, 2) for d in drivers], rel=1e-5)


ROW = {"driver_id": "d", "request_ts": REQUEST_TS}


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/nope:predict", {"rows": [ROW]}, 404, "nope"),
        ("/eta:predict?alias=staging", {"rows": [ROW]}, 404, "staging"),
        ("/eta:predict?version=9", {"rows": [ROW]}, 404, "9"),
        ("/Bad-Name:predict", {"rows": [ROW]}, 400, "lower-case identifier"),
        ("/eta:predict", {"rows": [{"rider_id": "r", "request_ts": REQUEST_TS}]}, 400, "driver_id"),
        ("/eta:predict", {"rows": [{"driver_id": 7, "request_ts": REQUEST_TS}]}, 400, "driver_id' must be a string"),
        ("/eta:predict", {"rows": [{"driver_id": "d", "request_ts": "noon"}]}, 400, "ISO-8601"),
        ("/eta:predict", {"rows": [{"driver_id": {"nested": 1}}]}, 422, "rows"),
        ("/eta:predict", {"rows": "d"}, 422, "valid list"),
        ("/eta:predict", {"rows": []}, 422, "at least 1"),
        ("/eta:predict", {"rows": [ROW] * 1001}, 422, "at most 1000"),
        ("/eta:predict", {"rows": [ROW], "extra": 1}, 422, "Extra inputs"),
        ("/eta:predict?version=0", {"rows": [ROW]}, 422, "greater than or equal to 1"),
        ("/eta:predict", '{"rows": [', 422, "JSON decode error"),
    ],
)
def test_bad_requests(service: Service, path: str, body: dict | str, status: int, fragment: str) -> None:
    payload = (
        {"data": body, "headers": {"Content-Type": "application/json"}} if isinstance(body, str) else {"json": body}
    )
    response = requests.post(service.url + path, timeout=60, **payload)
    assert response.status_code == status, response.text
    assert fragment in response.text, response.text
    assert "Traceback" not in response.text and "ray::" not in response.text


def test_timing_header_when_asked(service: Service) -> None:
    response = requests.post(
        f"{service.url}/eta:predict", json=service.body(), headers={TIMING_HEADER: "1"}, timeout=60
    )
    assert response.status_code == 200, response.text
    stages = decode_timing(response.headers[TIMING_HEADER])
    assert set(stages) <= set(STAGES)
    lookup = {"feature_lookup_hit", "feature_lookup_miss"} & set(stages)
    assert {"parsing", "routing", "transformation", "inference", "serialization"} <= set(stages) and len(lookup) == 1
    assert all(ms >= 0 for ms in stages.values())


def pool(name: str) -> serve.handle.DeploymentHandle:
    return serve.get_deployment_handle(name, APP)


def pool_state(name: str) -> dict:
    return pool(name).resident.remote().result(timeout_s=60)


def test_tier1_production_version_is_loaded_at_replica_start(service: Service) -> None:
    resident = pool("ModelPoolTier1").resident.remote().result(timeout_s=60)
    assert "eta:1" in resident["models"]


def test_tier2_model_with_forecast_traffic_is_loaded_before_its_first_request(service: Service) -> None:
    state = pool_state("GpuModelPool")
    assert state["models"] == ["surge:1"] and state["evictions"] == []


def test_preload_loads_through_the_multiplexed_path(service: Service) -> None:
    handle = pool("ModelPoolTier1")
    report = handle.options(multiplexed_model_id="eta:2").preload.remote("eta:2").result(timeout_s=60)
    assert report["model_id"] == "eta:2" and report["load_ms"] > 0 and report["replica"]
    again = handle.options(multiplexed_model_id="eta:2").preload.remote("eta:2").result(timeout_s=60)
    assert again["already_loaded"]
    assert {"eta:1", "eta:2"} <= set(handle.resident.remote().result(timeout_s=60)["models"])


def test_lower_tiers_load_lazily_and_evict_least_recently_used_by_memory(service: Service) -> None:
    handle = pool("ModelPool")
    assert handle.resident.remote().result(timeout_s=60)["models"] == []
    for version in (1, 2, 3):
        response = requests.post(f"{service.url}/promo:predict?version={version}", json=service.body(1), timeout=60)
        assert response.status_code == 200, response.text
    cache = handle.resident.remote().result(timeout_s=60)
    assert cache["models"] == ["promo:2", "promo:3"] and cache["evictions"] == ["promo:1"]
    assert cache["used_bytes"] <= cache["budget_bytes"]


def test_pinned_tier1_models_are_never_evicted_a_full_cache_refuses(service: Service) -> None:
    handle = pool("ModelPoolTier1")
    handle.options(multiplexed_model_id="eta:2").preload.remote("eta:2").result(timeout_s=60)
    response = requests.post(f"{service.url}/eta:predict?version=3", json=service.body(1), timeout=60)
    assert response.status_code == 503, response.text
    assert "tier 1 at peak" in response.json()["detail"]
    cache = handle.resident.remote().result(timeout_s=60)
    assert cache["models"] == ["eta:1", "eta:2"] and cache["evictions"] == []


def test_deep_models_are_served_by_the_gpu_pool_batched_across_requests(service: Service) -> None:
    """Concurrent requests of different sizes share forward passes; each gets its own rows' answers."""
    sizes = [1, 3, 2, 5, 1, 4, 2, 3]

    def ask(count: int) -> requests.Response:
        return requests.post(f"{service.url}/surge:predict?version=1", json=service.body(count), timeout=60)

    with ThreadPoolExecutor(len(sizes)) as pool:
        answers = list(pool.map(ask, sizes))
    with torch.inference_mode():
        for count, answer in zip(sizes, answers, strict=True):
            assert answer.status_code == 200, answer.text
            rows = [model_row(service.snapshot, d) for d in service.snapshot.index[:count]]
            truth = SURGE(torch.tensor(rows, dtype=torch.float32))[:, 0].tolist()
            assert answer.json()["predictions"] == pytest.approx(truth, rel=1e-4)
    assert pool_state("GpuModelPool")["models"] == ["surge:1"]


def test_a_deepspeed_checkpoint_is_served_as_next_token_predictions(service: Service) -> None:
    answer = requests.post(f"{service.url}/next_char:predict?version=1", json=service.body(2), timeout=60)
    assert answer.status_code == 200, answer.text
    with torch.inference_mode():
        truth = NEXT_CHAR(torch.tensor([[8, 1]]))[:, -1, :].argmax(dim=-1).item()
    assert answer.json()["predictions"] == [float(truth)] * 2
    refused = requests.post(f"{service.url}/next_char:predict?version=2", json=service.body(1), timeout=60)
    assert refused.status_code == 400 and "past the language model's vocabulary" in refused.json()["detail"]


def test_every_stage_reaches_the_ray_prometheus_endpoint(service: Service, ray_metrics_url: str) -> None:
    for _ in range(3):
        requests.post(f"{service.url}/eta:predict", json=service.body(), timeout=60).raise_for_status()
    wanted = {f'stage="{stage}"' for stage in ("parsing", "routing", "transformation", "inference", "serialization")}
    found: set[str] = set()
    text = ""

    def exported() -> bool:
        nonlocal found, text
        text = requests.get(ray_metrics_url, timeout=5).text
        lines = [line for line in text.splitlines() if line.startswith(f"ray_{STAGE_SECONDS}_bucket")]
        found = {label for label in wanted if any(label in line for line in lines)}
        return found == wanted and REQUEST_SECONDS in text

    with contextlib.suppress(TimeoutError):  # the assertions below say what is missing
        wait_for(exported, 60, interval_s=1)
    assert found == wanted
    assert f"ray_{REQUEST_SECONDS}_bucket" in text


def _serving_app_routes(replica: object) -> tuple[str, list[str]]:
    """Run in a replica actor (``__ray_call__``), on the app it serves: the kind of its first top-level route, and
    its API routes' paths, in the order Serve matches them to name each request's route."""
    from ray.serve._private.http_util import _walk_fastapi_routes

    app = replica._replica_impl._user_callable_asgi_app  # type: ignore[attr-defined]  # Serve's, pinned here
    return type(app.router.routes[0]).__name__, [route.path for route, _, _ in _walk_fastapi_routes(app)]


def test_the_replicas_serve_predict_as_their_apps_first_route(service: Service) -> None:
    """`serve.ingress` freezes a copy of the app, and the replica serves the copy: `:predict` comes first there (the
    app's lifespan orders it), not only in the driver's app."""
    import ray
    from ray.util.state import list_actors

    from apps.prediction.fast_path import PREDICT_ROUTE

    replicas = [
        actor.name
        for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
        if actor.class_name.startswith(f"ServeReplica:{APP}:") and actor.class_name.endswith("Tier1")
    ]
    assert replicas, "no tier-1 replica of the prediction app is alive"
    for name in replicas:
        actor = ray.get_actor(name, namespace="serve")
        first, paths = ray.get(actor.__ray_call__.remote(_serving_app_routes), timeout=60)
        assert first == "_IncludedRouter", (name, first)  # the class's routes before FastAPI's documentation's
        assert paths[0] == PREDICT_ROUTE and "/v2/models/{model}/infer" in paths, (name, paths[:3])


def triton_url(service: Service) -> str:
    return service.url.removeprefix("http://").removesuffix("/v1/models")


def bytes_input(name: str, values: list[str], binary: bool, shape: list[int] | None = None) -> object:
    import tritonclient.http as triton

    tensor = triton.InferInput(name, shape or [len(values)], "BYTES")
    data = np.array([v.encode() for v in values], dtype=np.object_).reshape(shape or [len(values)])
    tensor.set_data_from_numpy(data, binary_data=binary)
    return tensor


def test_tritonclient_predicts_through_the_open_inference_protocol(service: Service) -> None:
    """An unmodified standard client: health, model metadata and readiness, then inference with binary tensors
    (tritonclient's default) and with JSON, by alias and by pinned version; the answers are the model's."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=triton_url(service))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("eta")
    metadata = client.get_model_metadata("eta")
    assert metadata["platform"] == "xgboost" and {"1", "2", "3"} <= set(metadata["versions"])
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {"driver_id": "BYTES", "request_ts": "BYTES"}
    drivers = [str(d) for d in service.snapshot.index[:3]]
    context = {"snapshot": service.snapshot, "boosters": service.boosters}
    for binary, version in ((True, "1"), (False, "2"), (True, "")):
        times = bytes_input("request_ts", [REQUEST_TS] * 3, binary, [3, 1])
        inputs = [bytes_input("driver_id", drivers, binary), times]
        outputs = [triton.InferRequestedOutput("predictions", binary_data=binary)]
        result = client.infer("eta", inputs, model_version=version, outputs=outputs)
        served = int(result.get_response()["model_version"])
        assert served == int(version or served) and result.get_response()["parameters"]["degraded"] is False
        wanted = [expected(context, driver, served) for driver in drivers]
        assert result.as_numpy("predictions").tolist() == pytest.approx(wanted, rel=1e-5)


def test_open_inference_bad_input_is_a_4xx_that_says_what_to_fix(service: Service) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=triton_url(service))
    wrong = triton.InferInput("driver_id", [1], "INT64")
    wrong.set_data_from_numpy(np.array([7], dtype=np.int64))
    with pytest.raises(InferenceServerException, match="'driver_id' is BYTES \\(a string\\), not INT64"):
        client.infer("eta", [wrong])
    with pytest.raises(InferenceServerException, match="missing input\\(s\\) driver_id"):
        client.infer("eta", [bytes_input("request_ts", [REQUEST_TS], binary=True)])
    assert not client.is_model_ready("nope")
    base = f"http://{triton_url(service)}/v2/models"
    driver = {"name": "driver_id", "datatype": "BYTES", "shape": [2], "data": ["drv_1"]}
    cases = [
        ("nope/infer", {"inputs": [driver]}, 404, "nope"),
        ("eta/versions/99/infer", {"inputs": [driver]}, 404, "99"),
        ("eta/infer", {"inputs": [driver]}, 400, "shape [2] holds 2 elements, but 1 came"),
        ("eta/infer", {"inputs": [{**driver, "shape": [1001], "data": ["d"] * 1001}]}, 400, "more than the 1000"),
        ("eta/infer", {"rows": []}, 400, 'non-empty "inputs" list'),
    ]
    for path, body, status, fragment in cases:
        response = requests.post(f"{base}/{path}", json=body, timeout=60)
        assert (response.status_code, fragment in response.json()["error"]) == (status, True), response.text


def test_tritonclient_grpc_predicts_and_bad_input_is_a_grpc_error(service: Service) -> None:
    """The same protocol over Serve's gRPC proxy: an unmodified `tritonclient.grpc`, raw tensors (its default)."""
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=f"127.0.0.1:{service.grpc_port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("eta")
    metadata = client.get_model_metadata("eta", as_json=True)
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {"driver_id": "BYTES", "request_ts": "BYTES"}
    drivers = [str(d) for d in service.snapshot.index[:3]]

    def tensor(name: str, values: list[str]) -> triton.InferInput:
        infer_input = triton.InferInput(name, [len(values)], "BYTES")
        infer_input.set_data_from_numpy(np.array([v.encode() for v in values], dtype=np.object_))
        return infer_input

    result = client.infer("eta", [tensor("driver_id", drivers), tensor("request_ts", [REQUEST_TS] * 3)], "2")
    context = {"snapshot": service.snapshot, "boosters": service.boosters}
    wanted = [expected(context, driver, 2) for driver in drivers]
    assert result.get_response().model_version == "2"
    assert result.as_numpy("predictions").tolist() == pytest.approx(wanted, rel=1e-5)
    wrong = triton.InferInput("driver_id", [1], "INT64")
    wrong.set_data_from_numpy(np.array([7], dtype=np.int64))
    with pytest.raises(InferenceServerException, match="not INT64") as refused:
        client.infer("eta", [wrong])
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("nope", [tensor("driver_id", drivers[:1])])
    assert unknown.value.status() == "StatusCode.NOT_FOUND"


def test_an_alias_moved_and_rolled_back_in_the_web_ui_is_what_predictions_use(
    service: Service, ray_cluster: str, tmp_path: Path
) -> None:
    """In headless Chromium on `ma-ray ui` (the newcomer's environment, this service's state, the cluster's
    address): set eta's production alias to v2 with the admin token, then roll it back; each time the prediction
    service answers with the version the browser chose (its alias resolver re-reads within its TTL). The Serving
    page then shows each stage's latency from the service's own histogram, and each pool replica's resident
    models and circuit breakers; the feature group's page, the age of the values its lookups served."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    token = "ui-e2e-admin"
    cluster = {"RAY_AUTH_MODE": "token", "MA_RAY_RAY_ADDRESS": ray_cluster}  # the README's cluster shell
    env = {**newcomer_env(Path(service.state_dir)), **cluster, "MA_RAY_ADMIN_TOKEN": token}

    def served_version() -> int:
        return int(requests.post(f"{service.url}/eta:predict", json=service.body(1), timeout=60).json()["version"])

    def submit(browser: object, action: str, version: int | None = None) -> str:
        browser.get(f"{ui}/models/eta")  # type: ignore[attr-defined]
        form = browser.find_element(By.CSS_SELECTOR, "#alias-production form")  # type: ignore[attr-defined]
        form.find_element(By.NAME, "token").send_keys(token)
        if version is not None:
            Select(form.find_element(By.NAME, "version")).select_by_value(str(version))
        form.find_element(By.CSS_SELECTOR, f"button[value={action}]").click()
        if action == "rollback":
            browser.switch_to.alert.accept()  # type: ignore[attr-defined]
        notice = wait_for(lambda: browser.find_elements(By.ID, "notice"), 30, f"the {action} notice")  # type: ignore[attr-defined]
        assert console_errors(browser) == []
        return str(notice[0].text)

    def latency_rows(browser: object) -> dict[str, list[str]]:
        browser.get(f"{ui}/serving")  # type: ignore[attr-defined]
        rows = browser.find_elements(By.CSS_SELECTOR, "#latency tbody tr")  # type: ignore[attr-defined]
        cells = [[c.text for c in row.find_elements(By.TAG_NAME, "td")] for row in rows]
        return {row[0]: row[1:] for row in cells if len(row) == 5}

    assert served_version() == 1
    with ui_server(which_cli(), env, free_port()) as ui, chromium() as browser:
        assert submit(browser, "set", 2) == "production: version 1 -> 2"
        wait_for(lambda: served_version() == 2, 30, "predictions served by v2 after the UI set it")
        assert submit(browser, "rollback") == "production: version 2 -> 1"
        wait_for(lambda: served_version() == 1, 30, "predictions served by v1 after the UI rolled back")
        browser.save_screenshot(str(screenshots(tmp_path) / "model.png"))  # type: ignore[attr-defined]
        # Ray exports the histograms every few seconds: the stages appear once it has
        latency = wait_for(lambda: {"parsing", "inference"} <= latency_rows(browser).keys() and latency_rows(browser),
                           60, "the stages on the Serving page")  # fmt: skip
        assert int(latency["inference"][0]) > 0 and float(latency["inference"][1]) > 0  # observed, p50 ms
        pools = {p.find_element(By.TAG_NAME, "h3").text.split()[0]: p.text
                 for p in browser.find_elements(By.CSS_SELECTOR, "section.pool")}  # fmt: skip
        assert "eta:1" in pools["ModelPoolTier1"] and "closed" in pools["ModelPoolTier1"]  # resident, breakers
        assert console_errors(browser) == []
        browser.save_screenshot(str(screenshots(tmp_path) / "serving.png"))  # type: ignore[attr-defined]
        browser.get(f"{ui}/features/rideshare/driver_stats")
        assert "lookups" in browser.find_element(By.ID, "served-age").text  # the age of the values predictions read
