"""The Open Inference Protocol's REST encoding, pinned against what `tritonclient.http` really sends and reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.http._infer_result import InferResult
from tritonclient.http._utils import _get_inference_request

from ma_ray.palette.types import FeatureType
from ma_ray.serving.open_inference import (
    HEADER_LENGTH,
    InferenceProtocolError,
    infer_request_from_message,
    infer_response,
    model_metadata,
    parse_infer_request,
    request_rows,
)

INPUTS = {"driver_id": FeatureType.STRING, "request_ts": FeatureType.TIMESTAMP, "surge": FeatureType.FLOAT}
DRIVERS = np.array([b"drv_1", b"drv_2", b"drv_\xc3\xa9"], dtype=np.object_)


def triton_request(binary: bool, outputs: bool = False) -> tuple[bytes, int | None]:
    """The exact body (and JSON length) tritonclient.http sends for three rows."""
    driver = triton.InferInput("driver_id", [3], "BYTES")
    driver.set_data_from_numpy(DRIVERS, binary_data=binary)
    surge = triton.InferInput("surge", [3, 1], "FP32")
    surge.set_data_from_numpy(np.array([[1.5], [2.0], [0.5]], dtype=np.float32), binary_data=binary)
    wanted = [triton.InferRequestedOutput("predictions", binary_data=binary)] if outputs else None
    return _get_inference_request([driver, surge], "req-7", wanted, 0, False, False, 0, None, None)


@pytest.mark.parametrize("binary", [True, False], ids=["binary tensors", "json"])
def test_what_tritonclient_sends_becomes_request_rows(binary: bool) -> None:
    body, header_length = triton_request(binary)
    request = parse_infer_request(body, header_length, max_elements=1000)
    assert request.id == "req-7" and request.binary_output  # no outputs named: tritonclient asks for binary
    rows = request_rows(request, INPUTS, required=["driver_id"])
    assert rows == [
        {"driver_id": "drv_1", "surge": 1.5},
        {"driver_id": "drv_2", "surge": 2.0},
        {"driver_id": "drv_é", "surge": 0.5},
    ]


@pytest.mark.parametrize("binary", [True, False], ids=["binary output", "json output"])
def test_tritonclient_reads_the_answer(binary: bool) -> None:
    body, headers = infer_response("eta", 2, "req-7", [1.25, -3.5], {"degraded": False}, binary)
    result = InferResult.from_response_body(body, header_length=int(headers[HEADER_LENGTH]) if binary else None)
    assert result.as_numpy("predictions").tolist() == [1.25, -3.5]
    assert result.get_response()["model_version"] == "2" and result.get_response()["id"] == "req-7"
    assert result.get_response()["parameters"] == {"degraded": False}


def test_named_outputs_decide_the_output_encoding() -> None:
    assert not parse_infer_request(*triton_request(binary=False, outputs=True), max_elements=10).binary_output
    assert parse_infer_request(*triton_request(binary=True, outputs=True), max_elements=10).binary_output


def json_body(*inputs: dict) -> bytes:
    return json.dumps({"inputs": list(inputs)}).encode()


DRIVER = {"name": "driver_id", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}


@pytest.mark.parametrize(
    ("body", "header_length", "fragment"),
    [
        (b"{not json", None, "not JSON"),
        (b'{"inputs": []}', None, 'non-empty "inputs"'),
        (json_body({**DRIVER, "datatype": "STRING"}), None, "datatype 'STRING' is not one of"),
        (json_body({**DRIVER, "shape": [3]}), None, "shape [3] holds 3 elements, but 2 came"),
        (json_body({**DRIVER, "shape": [-1, 2]}), None, "negative dimension"),
        (json_body({**DRIVER, "shape": ["2"]}), None, "shape must be a list of integers"),
        (json_body({**DRIVER, "data": [1, 2]}), None, "1 is not a BYTES value"),
        (json_body({**DRIVER, "shape": [2000], "data": ["a"] * 2000}), None, "2000 elements, more than the 1000"),
        (json_body({"name": "driver_id", "datatype": "BYTES", "shape": [1]}), None, 'neither "data"'),
        (json_body(DRIVER), 9999, "outside the body"),
        (json_body({**DRIVER, "parameters": {"binary_data_size": 8}}) + b"\x05\x00\x00\x00ab", None, "not JSON"),
    ],
)
def test_malformed_requests_say_what_to_fix(body: bytes, header_length: int | None, fragment: str) -> None:
    with pytest.raises(InferenceProtocolError, match=fragment.replace("[", "\\[").replace("(", "\\(")):
        parse_infer_request(body, header_length, max_elements=1000)


def test_binary_data_is_checked_against_its_declared_sizes() -> None:
    header = json_body({"name": "driver_id", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 9}})
    cut = header + b"\x05\x00\x00\x00abc"  # 7 bytes where 9 were declared
    with pytest.raises(InferenceProtocolError, match="outside the binary data"):
        parse_infer_request(cut, len(header), max_elements=10)
    long = header + b"\x09\x00\x00\x00abcde"  # the element claims 9 bytes, 5 follow
    with pytest.raises(InferenceProtocolError, match="longer than the data left"):
        parse_infer_request(long, len(header), max_elements=10)
    floats = json_body({"name": "surge", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 3}})
    with pytest.raises(InferenceProtocolError, match="not a whole number of FP32"):
        parse_infer_request(floats + b"abc", len(floats), max_elements=10)


def rows(*inputs: dict, required: tuple[str, ...] = ("driver_id",)) -> list[dict]:
    return request_rows(parse_infer_request(json_body(*inputs), None, 1000), INPUTS, list(required))


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        (({**DRIVER, "datatype": "INT64", "data": [1, 2]},), "'driver_id' is BYTES \\(a string\\), not INT64"),
        (({"name": "surge", "datatype": "FP64", "shape": [2], "data": [1.0, 2.0]},), "missing input\\(s\\) driver_id"),
        (
            (DRIVER, {"name": "rider", "datatype": "BYTES", "shape": [2], "data": ["x", "y"]}),
            "unknown input\\(s\\) rider",
        ),
        ((DRIVER, {"name": "surge", "datatype": "FP64", "shape": [1], "data": [1.0]}), "disagree on the batch size"),
        (({**DRIVER, "shape": [1, 2]},), "must be \\[N\\] or \\[N, 1\\]"),
        ((DRIVER, DRIVER), "appears twice"),
    ],
)
def test_inputs_that_do_not_fit_the_model_are_refused(inputs: tuple[dict, ...], fragment: str) -> None:
    with pytest.raises(InferenceProtocolError, match=fragment):
        rows(*inputs)


def test_integers_are_accepted_for_a_float_field_and_made_floats() -> None:
    surge = {"name": "surge", "datatype": "INT32", "shape": [2], "data": [1, 2]}
    assert rows(DRIVER, surge) == [{"driver_id": "a", "surge": 1.0}, {"driver_id": "b", "surge": 2.0}]


def test_model_metadata_lists_what_a_caller_supplies() -> None:
    metadata = model_metadata("eta", [1, 2], "xgboost", INPUTS)
    assert metadata["versions"] == ["1", "2"]
    assert metadata["inputs"] == [
        {"name": "driver_id", "datatype": "BYTES", "shape": [-1]},
        {"name": "request_ts", "datatype": "BYTES", "shape": [-1]},
        {"name": "surge", "datatype": "FP64", "shape": [-1]},
    ]
    assert metadata["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]


def test_a_catalog_names_the_entity_keys_and_request_fields_a_signature_reads() -> None:
    from importlib import resources

    from ma_ray.palette.repository import load_repository
    from ma_ray.serving.feature_resolver import ServingCatalog

    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        catalog = ServingCatalog(load_repository(path))
    peak = "@palette:rideshare:driver_model_inputs:peak_hour_request:driver_id"  # derived from @basis:request_ts
    inputs, required = catalog.request_inputs(["@palette:rideshare:driver_stats:trip_count_7d:driver_id", peak])
    assert inputs == {"driver_id": FeatureType.STRING, "request_ts": FeatureType.TIMESTAMP}
    assert required == ["driver_id"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
TENSOR_SPEC = st.fixed_dictionaries(
    {"name": st.sampled_from(["driver_id", "surge", "request_ts", "x"])},
    optional={
        "datatype": st.sampled_from(["BYTES", "FP32", "FP64", "INT64", "BOOL", "UINT8", "STRING", 3]),
        "shape": st.lists(st.integers(-2, 4), max_size=3) | JSON,
        "data": JSON,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_size": st.integers(-2, 12) | JSON}),
    },
)


@settings(max_examples=400, deadline=None)
@given(
    body=st.fixed_dictionaries({}, optional={"inputs": st.lists(TENSOR_SPEC, max_size=3) | JSON, "id": JSON}),
    binary=st.binary(max_size=16),
    header_length=st.none() | st.integers(-1, 400),
)
def test_no_request_raises_anything_but_a_protocol_error(body: dict, binary: bytes, header_length: int | None) -> None:
    raw = json.dumps(body).encode()
    data, length = (raw, None) if header_length is None else (raw + binary, header_length)
    try:
        rows = request_rows(parse_infer_request(data, length, max_elements=8), INPUTS, required=["driver_id"])
    except InferenceProtocolError:
        return
    assert all(isinstance(row["driver_id"], str) for row in rows)


def grpc_request(binary: bool) -> object:
    """The ModelInferRequest tritonclient.grpc builds for three rows (raw tensors by default, or typed contents)."""
    import tritonclient.grpc as triton_grpc
    from tritonclient.grpc._utils import _get_inference_request as grpc_inference_request

    driver = triton_grpc.InferInput("driver_id", [3], "BYTES")
    surge = triton_grpc.InferInput("surge", [3, 1], "FP32")
    values = np.array([[1.5], [2.0], [0.5]], dtype=np.float32)
    if binary:
        driver.set_data_from_numpy(DRIVERS)
        surge.set_data_from_numpy(values)
    else:  # typed contents, as other clients send
        driver._get_tensor().contents.bytes_contents.extend(DRIVERS.tolist())
        surge._get_tensor().contents.fp32_contents.extend(values.ravel().tolist())
    return grpc_inference_request(
        model_name="eta", inputs=[driver, surge], model_version="", request_id="req-7", outputs=None,
        sequence_id=0, sequence_start=False, sequence_end=False, priority=0, timeout=None, parameters=None,
    )  # fmt: skip


@pytest.mark.parametrize("binary", [True, False], ids=["raw contents", "typed contents"])
def test_what_tritonclient_grpc_sends_becomes_request_rows(binary: bool) -> None:
    request = infer_request_from_message(grpc_request(binary), max_elements=1000)
    assert request.id == "req-7"
    assert request_rows(request, INPUTS, required=["driver_id"]) == [
        {"driver_id": "drv_1", "surge": 1.5},
        {"driver_id": "drv_2", "surge": 2.0},
        {"driver_id": "drv_é", "surge": 0.5},
    ]


@settings(max_examples=300, deadline=None)
@given(
    inputs=st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["driver_id", "surge", "x", ""]),
                "datatype": st.sampled_from(["BYTES", "FP32", "FP64", "INT64", "BOOL", "FP16", "STRING", ""]),
                "shape": st.lists(st.integers(-3, 4), max_size=3),
            }
        ),
        max_size=3,
    ),
    raw=st.lists(st.binary(max_size=24), max_size=3),
    typed=st.lists(st.text(max_size=4), max_size=4),
)
def test_no_grpc_request_raises_anything_but_a_protocol_error(inputs: list[dict], raw: list, typed: list) -> None:
    from ma_ray.serving.inference_grpc import messages

    message = messages.ModelInferRequest(model_name="eta", raw_input_contents=raw)
    for spec in inputs:
        tensor = message.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
        tensor.contents.bytes_contents.extend(t.encode() for t in typed)
    try:
        rows = request_rows(infer_request_from_message(message, max_elements=8), INPUTS, required=["driver_id"])
    except InferenceProtocolError:
        return
    assert all(isinstance(row["driver_id"], str) for row in rows)
