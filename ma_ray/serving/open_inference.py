"""The Open Inference Protocol (KServe V2, what Triton, KServe and MLServer speak), REST side, as pure functions.

Requests are parsed from JSON, or from JSON followed by binary tensors (Triton's binary tensor data extension:
the JSON's length in the ``Inference-Header-Content-Length`` header, each binary input's byte count in its
``parameters.binary_data_size``, BYTES elements as a 4-byte little-endian length then the bytes), which is what
``tritonclient.http`` sends by default. Inputs become request rows: input ``driver_id`` of shape ``[N]`` (or
``[N, 1]``) is the ``driver_id`` of rows 0..N-1. Answers are JSON, or JSON plus binary outputs when the client asks.
Every malformed request raises `InferenceProtocolError` with a message that says what to fix (a 400).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ma_ray.palette import FeatureType

HEADER_LENGTH = "Inference-Header-Content-Length"
OUTPUT = "predictions"
OUTPUT_DATATYPE = "FP64"

# Datatype -> numpy dtype (little-endian, as the protocol's binary data is); BYTES is length-prefixed instead.
NUMERIC_DTYPES: dict[str, str] = {
    "BOOL": "|b1",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
DATATYPES = frozenset({*NUMERIC_DTYPES, "BYTES"})
_INTEGERS = frozenset(name for name in NUMERIC_DTYPES if "INT" in name)
_FLOATS = frozenset({"FP16", "FP32", "FP64"})
# What a catalog type is asked for as (model metadata), and which datatypes a request may send it in.
INPUT_DATATYPES: dict[FeatureType, str] = {
    FeatureType.STRING: "BYTES",
    FeatureType.INT: "INT64",
    FeatureType.FLOAT: "FP64",
    FeatureType.BOOL: "BOOL",
    FeatureType.TIMESTAMP: "BYTES",  # ISO-8601 text, as in `:predict`
}
ACCEPTED_DATATYPES: dict[FeatureType, frozenset[str]] = {
    FeatureType.STRING: frozenset({"BYTES"}),
    FeatureType.INT: _INTEGERS,
    FeatureType.FLOAT: _FLOATS | _INTEGERS,
    FeatureType.BOOL: frozenset({"BOOL"}),
    FeatureType.TIMESTAMP: frozenset({"BYTES"}),
}


class InferenceProtocolError(ValueError):
    """A request the protocol (or the model's inputs) does not allow; the message says what to fix."""


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    values: list[Any]  # flattened, row-major


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: tuple[Tensor, ...]
    binary_output: bool  # the client asked for the outputs as binary data


def parse_infer_request(body: bytes, header_length: int | None, max_elements: int) -> InferRequest:
    """The request in ``body`` (``header_length``: the JSON's length, when binary tensors follow it)."""
    if header_length is not None and not 0 < header_length <= len(body):
        raise InferenceProtocolError(f"{HEADER_LENGTH} {header_length} is outside the body's {len(body)} bytes")
    header, binary = (body, b"") if header_length is None else (body[:header_length], body[header_length:])
    try:
        request = orjson.loads(header)
    except orjson.JSONDecodeError as error:
        raise InferenceProtocolError(f"the request is not JSON: {error}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise InferenceProtocolError('the request must be a JSON object with a non-empty "inputs" list')
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InferenceProtocolError('"id" must be a string')
    offset, tensors = 0, []
    for spec in request["inputs"]:
        tensor, offset = _tensor(spec, binary, offset, max_elements)
        tensors.append(tensor)
    if offset != len(binary):
        raise InferenceProtocolError(f"{len(binary) - offset} bytes of binary data follow the inputs unclaimed")
    return InferRequest(request_id, tuple(tensors), _binary_output(request))


def _binary_output(request: dict[str, Any]) -> bool:
    raw_parameters, raw_outputs = request.get("parameters"), request.get("outputs")
    parameters = raw_parameters if isinstance(raw_parameters, dict) else {}
    outputs = raw_outputs if isinstance(raw_outputs, list) else []
    asked = [o for o in outputs if isinstance(o, dict) and isinstance(o.get("parameters"), dict)]
    return bool(parameters.get("binary_data_output")) or any(o["parameters"].get("binary_data") for o in asked)


def _tensor(spec: Any, binary: bytes, offset: int, max_elements: int) -> tuple[Tensor, int]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise InferenceProtocolError('each input must be an object with a "name", "datatype", "shape" and data')
    name, datatype, shape = spec["name"], spec.get("datatype"), spec.get("shape")
    if datatype not in DATATYPES:
        raise InferenceProtocolError(f"input '{name}': datatype {datatype!r} is not one of {sorted(DATATYPES)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise InferenceProtocolError(f"input '{name}': shape must be a list of integers, got {shape!r}")
    count = _element_count(name, shape, max_elements)
    raw_parameters = spec.get("parameters")
    parameters = raw_parameters if isinstance(raw_parameters, dict) else {}
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
            raise InferenceProtocolError(f"input '{name}': binary_data_size {size!r} is outside the binary data")
        values = _from_binary(name, datatype, binary[offset : offset + size])
        offset += size
    elif "data" in spec:
        values = _from_json(name, datatype, spec["data"])
    else:
        raise InferenceProtocolError(f"input '{name}' has neither \"data\" nor parameters.binary_data_size")
    return _counted(Tensor(name, datatype, tuple(shape), values), count), offset


def _counted(tensor: Tensor, count: int) -> Tensor:
    if len(tensor.values) != count:
        raise InferenceProtocolError(
            f"input '{tensor.name}': shape {list(tensor.shape)} holds {count} elements, but {len(tensor.values)} came"
        )
    return tensor


def _element_count(name: str, shape: list[int], max_elements: int) -> int:
    if any(d < 0 for d in shape):
        raise InferenceProtocolError(f"input '{name}': shape {shape} has a negative dimension")
    count = math.prod(shape)
    if count > max_elements:
        raise InferenceProtocolError(f"input '{name}': {count} elements, more than the {max_elements} allowed")
    return count


# The typed-contents field of a gRPC input for each datatype (FP16 travels only as raw bytes).
GRPC_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def infer_request_from_message(message: Any, max_elements: int) -> InferRequest:
    """A gRPC ``ModelInferRequest`` (KServe's or Triton's, which share it) as an `InferRequest`: each input from
    ``raw_input_contents`` (in input order, encoded as the REST binary extension) or its typed ``contents``."""
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise InferenceProtocolError(f"{len(raw)} raw_input_contents for {len(message.inputs)} inputs")
    if not message.inputs:
        raise InferenceProtocolError("the request has no inputs")
    tensors = []
    for index, spec in enumerate(message.inputs):
        name, datatype, shape = spec.name, spec.datatype, list(spec.shape)
        if datatype not in DATATYPES:
            raise InferenceProtocolError(f"input '{name}': datatype {datatype!r} is not one of {sorted(DATATYPES)}")
        count = _element_count(name, shape, max_elements)
        if raw:
            values = _from_binary(name, datatype, raw[index])
        elif datatype in GRPC_CONTENTS:
            values = list(getattr(spec.contents, GRPC_CONTENTS[datatype]))
        else:
            raise InferenceProtocolError(f"input '{name}': {datatype} data must come as raw_input_contents")
        tensors.append(_counted(Tensor(name, datatype, tuple(shape), values), count))
    return InferRequest(message.id or None, tuple(tensors), binary_output=True)


def _from_binary(name: str, datatype: str, raw: bytes) -> list[Any]:
    if datatype != "BYTES":
        itemsize = np.dtype(NUMERIC_DTYPES[datatype]).itemsize
        if len(raw) % itemsize:
            raise InferenceProtocolError(f"input '{name}': {len(raw)} bytes is not a whole number of {datatype}")
        numbers: list[Any] = np.frombuffer(raw, dtype=NUMERIC_DTYPES[datatype]).tolist()
        return numbers
    values, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InferenceProtocolError(f"input '{name}': a BYTES element's 4-byte length is cut short")
        (length,) = struct.unpack_from("<I", raw, offset)
        if offset + 4 + length > len(raw):
            raise InferenceProtocolError(f"input '{name}': a BYTES element is longer than the data left")
        values.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return values


def _from_json(name: str, datatype: str, data: Any) -> list[Any]:
    values = _flattened(data if isinstance(data, list) else [data])
    if datatype == "BYTES":
        wrong = [v for v in values if not isinstance(v, str)]
    elif datatype == "BOOL":
        wrong = [v for v in values if not isinstance(v, bool)]
    elif datatype in _INTEGERS:
        wrong = [v for v in values if not isinstance(v, int) or isinstance(v, bool)]
    else:
        wrong = [v for v in values if not isinstance(v, int | float) or isinstance(v, bool)]
    if wrong:
        raise InferenceProtocolError(f"input '{name}': {wrong[0]!r} is not a {datatype} value")
    return values


def _flattened(data: list[Any]) -> list[Any]:
    if not any(isinstance(item, list) for item in data):
        return data
    return [value for item in data for value in (_flattened(item) if isinstance(item, list) else [item])]


def request_rows(
    request: InferRequest, inputs: Mapping[str, FeatureType], required: Sequence[str]
) -> list[dict[str, Any]]:
    """One request row per batch index: each input's name and value (BYTES as text), checked against the model's
    ``inputs`` (name -> catalog type); ``required`` ones must be there (entity keys)."""
    tensors = {tensor.name: tensor for tensor in request.inputs}
    if len(tensors) != len(request.inputs):
        raise InferenceProtocolError("an input name appears twice")
    unknown = sorted(tensors.keys() - inputs.keys())
    if unknown:
        raise InferenceProtocolError(f"unknown input(s) {', '.join(unknown)}; the model takes {', '.join(inputs)}")
    missing = [name for name in required if name not in tensors]
    if missing:
        raise InferenceProtocolError(f"missing input(s) {', '.join(missing)}, which the model's features are keyed by")
    batch = {_batch_size(tensor) for tensor in tensors.values()}
    if len(batch) != 1:
        raise InferenceProtocolError(f"inputs disagree on the batch size (first dimension): {sorted(batch)}")
    columns = {name: _column(tensor, inputs[name]) for name, tensor in tensors.items()}
    rows: list[dict[str, Any]] = [{} for _ in range(batch.pop())]
    for name, column in columns.items():
        for row, value in zip(rows, column, strict=True):
            row[name] = value
    return rows


def _batch_size(tensor: Tensor) -> int:
    if len(tensor.shape) == 1 or (len(tensor.shape) == 2 and tensor.shape[1] == 1):
        return tensor.shape[0]
    raise InferenceProtocolError(f"input '{tensor.name}': shape {list(tensor.shape)} must be [N] or [N, 1]")


def _column(tensor: Tensor, kind: FeatureType) -> list[Any]:
    if tensor.datatype not in ACCEPTED_DATATYPES[kind]:
        raise InferenceProtocolError(
            f"input '{tensor.name}' is {INPUT_DATATYPES[kind]} (a {kind}), not {tensor.datatype}"
        )
    if tensor.datatype != "BYTES":
        return [float(v) for v in tensor.values] if kind is FeatureType.FLOAT else tensor.values
    try:
        return [v.decode() if isinstance(v, bytes) else v for v in tensor.values]
    except UnicodeDecodeError:
        raise InferenceProtocolError(f"input '{tensor.name}': BYTES values must be UTF-8 text") from None


def infer_response(
    model: str,
    version: int,
    request_id: str | None,
    predictions: Sequence[float],
    parameters: dict[str, Any],
    binary: bool,
) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers: JSON, or JSON then the output as binary FP64 when asked."""
    output: dict[str, Any] = {"name": OUTPUT, "datatype": OUTPUT_DATATYPE, "shape": [len(predictions)]}
    raw = b""
    if binary:
        raw = np.asarray(predictions, dtype=NUMERIC_DTYPES[OUTPUT_DATATYPE]).tobytes()
        output["parameters"] = {"binary_data_size": len(raw)}
    else:
        output["data"] = list(predictions)
    answer: dict[str, Any] = {"model_name": model, "model_version": str(version), "outputs": [output]}
    if request_id is not None:
        answer["id"] = request_id
    if parameters:
        answer["parameters"] = parameters
    header = orjson.dumps(answer)
    return header + raw, ({HEADER_LENGTH: str(len(header))} if binary else {})


def model_metadata(
    model: str, versions: Sequence[int], platform: str, inputs: Mapping[str, FeatureType]
) -> dict[str, Any]:
    """What a caller supplies (entity keys and request fields, one value per row) and what comes back."""
    return {
        "name": model,
        "versions": [str(v) for v in versions],
        "platform": platform,
        "inputs": [{"name": n, "datatype": INPUT_DATATYPES[kind], "shape": [-1]} for n, kind in inputs.items()],
        "outputs": [{"name": OUTPUT, "datatype": OUTPUT_DATATYPE, "shape": [-1]}],
    }


__all__ = [
    "GRPC_CONTENTS",
    "HEADER_LENGTH",
    "InferRequest",
    "InferenceProtocolError",
    "Tensor",
    "infer_request_from_message",
    "infer_response",
    "model_metadata",
    "parse_infer_request",
    "request_rows",
]
