"""The Open Inference Protocol (KServe V2) over gRPC, on Serve's gRPC proxy: ``inference.GRPCInferenceService``'s
ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata and ModelInfer, answered by the tier-1
replicas as their REST twins are (`apps.prediction.open_inference`).

The messages are those `tritonclient` ships (`ma_ray.serving.inference_grpc`); Serve's gRPC proxy needs that
module's servicer function in its ``grpc_options`` (`SERVICER`). Errors carry the REST status's gRPC code:
INVALID_ARGUMENT, NOT_FOUND or UNAVAILABLE, with the same message.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import grpc
import numpy as np

from apps.prediction.errors import ERROR_TYPES, message_of, status_of
from apps.prediction.http import api
from apps.prediction.open_inference import v2_parameters
from apps.prediction.replica import elapsed_ms
from apps.prediction.schemas import MAX_ROWS
from ma_ray.serving import OUTPUT, OUTPUT_DATATYPE, PARSING, SERIALIZATION, infer_request_from_message
from ma_ray.serving.inference_grpc import messages as pb

SERVICER = "ma_ray.serving.inference_grpc.add_GRPCInferenceServiceServicer_to_server"
CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND, 503: grpc.StatusCode.UNAVAILABLE}


def _refused(context: Any, error: BaseException, empty: Any) -> Any:
    context.set_code(CODES[status_of(error)])
    context.set_details(message_of(error))
    return empty


class OpenInferenceGrpc:
    """The gRPC methods of a replica that takes requests (Serve calls them by the RPC's name)."""

    async def ServerLive(self, request: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=True)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="ma-ray", version=api.version, extensions=["binary_tensor_data"])

    async def ModelReady(self, request: pb.ModelReadyRequest, grpc_context: Any) -> pb.ModelReadyResponse:
        try:
            return pb.ModelReadyResponse(ready=self.v2_is_ready(request.name, request.version or None))
        except ERROR_TYPES as error:
            return _refused(grpc_context, error, pb.ModelReadyResponse())

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, grpc_context: Any) -> pb.ModelMetadataResponse:
        try:
            metadata = self.v2_metadata(request.name, request.version or None)
        except ERROR_TYPES as error:
            return _refused(grpc_context, error, pb.ModelMetadataResponse())
        tensors = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[tensors(**tensor) for tensor in metadata["inputs"]],
            outputs=[tensors(**tensor) for tensor in metadata["outputs"]],
        )

    async def ModelInfer(self, request: pb.ModelInferRequest, grpc_context: Any) -> pb.ModelInferResponse:
        timing = {PARSING: 0.0}  # the proxy parsed the message
        parse = partial(infer_request_from_message, request, MAX_ROWS)
        try:
            _, served, answer, warnings = await self.v2_predict(
                request.model_name, request.model_version or None, parse, timing
            )
        except ERROR_TYPES as error:
            return _refused(grpc_context, error, pb.ModelInferResponse())
        serialized = time.perf_counter()
        predictions = answer["predictions"]
        response = pb.ModelInferResponse(
            model_name=request.model_name,
            model_version=str(served),
            id=request.id,
            outputs=[
                pb.ModelInferResponse.InferOutputTensor(name=OUTPUT, datatype=OUTPUT_DATATYPE, shape=[len(predictions)])
            ],
            raw_output_contents=[np.asarray(predictions, dtype="<f8").tobytes()],
        )
        for key, value in v2_parameters(answer, warnings).items():
            if isinstance(value, bool):
                response.parameters[key].bool_param = value
            else:
                response.parameters[key].string_param = ", ".join(map(str, value))
        timing[SERIALIZATION] = elapsed_ms(serialized)
        self._observe(timing)
        return response

    # What the replica brings (`apps.prediction.open_inference.OpenInferenceRoutes`, `FrontReplica`).
    v2_is_ready: Any
    v2_metadata: Any
    v2_predict: Any
    _observe: Any


__all__ = ["CODES", "SERVICER", "OpenInferenceGrpc"]
