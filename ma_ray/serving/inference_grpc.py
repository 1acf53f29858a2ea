"""The Open Inference Protocol's gRPC service (``inference.GRPCInferenceService``) for Serve's gRPC proxy, with the
messages `tritonclient` ships (Triton's service is KServe's plus more RPCs; the shared messages match on the wire).

Serve's ``grpc_options.grpc_servicer_functions`` names `add_GRPCInferenceServiceServicer_to_server` here."""

from __future__ import annotations

import sys

from tritonclient.grpc import service_pb2, service_pb2_grpc

# tritonclient's generated messages say their module is "grpc_service_pb2" (their .proto's name), which nothing
# imports; Serve pickles messages between its proxy and the replicas, so that name must resolve in both.
sys.modules.setdefault("grpc_service_pb2", service_pb2)

messages = service_pb2
add_GRPCInferenceServiceServicer_to_server = service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server

__all__ = ["add_GRPCInferenceServiceServicer_to_server", "messages"]
