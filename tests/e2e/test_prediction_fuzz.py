"""The prediction service's HTTP API, fuzzed from its own OpenAPI schema with schemathesis: whatever the input
(valid or not), the answer is never a server error, its status is one the schema documents, and its body
conforms to the schema (4xx bodies included)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ray import serve
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.prediction import build_app
from ma_ray.config import load_settings
from ma_ray.gallery import Gallery
from tests.e2e.test_prediction import SIGNATURE, train
from tests.ports import free_port
from tests.rideshare_data import load_sample


@schemathesis.check
def error_says_what_was_wrong(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case) -> None:
    """A 4xx names the mistake in plain words: no traceback, no Ray task wrapper."""
    if 400 <= response.status_code < 500:
        text = response.text
        assert "Traceback" not in text and "ray::" not in text, f"error body leaks internals: {text[:300]}"


CHECKS = [
    error_says_what_was_wrong,
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
APP = "prediction-fuzz"


@pytest.fixture(scope="module")
def base_url(ray_cluster: str, raw_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    overrides = {"state_dir": tmp_path_factory.mktemp("prediction_fuzz")}
    load_sample(load_settings(**overrides), raw_uri, batch_rows=5000)
    gallery = Gallery.from_settings(load_settings(**overrides))
    gallery.register_model(name="eta", owner="maps", tier=1, framework="xgboost")
    gallery.log_model("eta", train(0), signature=SIGNATURE)
    gallery.set_alias("eta", "production", 1)
    gallery.close()
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serving = {"replicas": {"ModelPoolTier1": 1}}
    serve.run(build_app({"settings": overrides, "serving": serving}), name=APP, route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.delete(APP)
        serve.shutdown()


@pytest.fixture(scope="module")
def cases(base_url: str) -> st.SearchStrategy[Case]:
    """Valid and invalid requests for every operation of the schema the running app serves."""
    api = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    return st.one_of(api.as_strategy(GenerationMode.POSITIVE), api.as_strategy(GenerationMode.NEGATIVE))


@pytest.mark.parametrize("model", [None, "eta"], ids=["any-model", "served-model"])
def test_no_input_breaks_the_api(cases: st.SearchStrategy[Case], base_url: str, model: str | None) -> None:
    """``served-model`` names a model that exists, so rows, versions and aliases reach the pool."""

    @given(case=cases)
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Case) -> None:
        if model is not None and "model" in (case.path_parameters or {}):
            case.path_parameters = {**case.path_parameters, "model": model}
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=60)

    check()
