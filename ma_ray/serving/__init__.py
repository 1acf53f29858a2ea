"""Prediction-path logic, below the Serve applications: feature resolution for request rows (`FeatureResolver`,
its column-wise `Resolution` and `FeatureAnswer`, the lookup metrics), the tier-aware model cache and its
loading policies, pool placement, request coalescing and grouped inference, the framework predictors (a request's
few rows walk XGBoost's trees in numpy) and precision, the Open Inference Protocol (KServe V2) codec, per-stage
timing, and alias rollouts to Serve pools.

Two modules are imported by their own path, so that importing this package stays free of Ray Serve and gRPC:
`ma_ray.serving.multiplexer` (the replicas' model multiplexer, on Ray Serve's) and
`ma_ray.serving.inference_grpc` (the KServe V2 gRPC messages and service)."""

from ma_ray.serving.artifact_cache import DEFAULT_ROOT, LocalArtifact, LocalArtifactCache
from ma_ray.serving.batching import infer_grouped
from ma_ray.serving.coalescing import GATHER_GAP_S, RequestCoalescer
from ma_ray.serving.feature_answer import FeatureAnswer
from ma_ray.serving.feature_metrics import STALENESS_SECONDS, FeatureMetrics, LookupRecord, shared_feature_metrics
from ma_ray.serving.feature_resolver import EntityKeyError, FeatureResolver, ServingCatalog, UnknownReferenceError
from ma_ray.serving.frameworks import DEEP_FRAMEWORKS, PREDICT_THREADS, Predictor, serving_framework
from ma_ray.serving.model_cache import (
    CacheFullError,
    LoadingPolicy,
    TierAwareModelCache,
    loading_policy,
    preemptive_loads,
)
from ma_ray.serving.model_input import ModelInputs
from ma_ray.serving.open_inference import (
    DATATYPES,
    HEADER_LENGTH,
    OUTPUT,
    OUTPUT_DATATYPE,
    InferenceProtocolError,
    InferRequest,
    infer_request_from_message,
    infer_response,
    model_metadata,
    parse_infer_request,
    request_rows,
)
from ma_ray.serving.placement import (
    GPU_GROUP,
    LOWER_GROUP,
    POOL_DEPLOYMENTS,
    TIER1_GROUP,
    GroupSize,
    ModelProfile,
    PlacementPlanner,
    group_sizes,
    pool_serve_deployment,
)
from ma_ray.serving.precision import PRECISIONS, Precision, apply_precision, check_precision, input_dtype
from ma_ray.serving.resolution import MetaColumn, Resolution
from ma_ray.serving.rollout import Rollout, RolloutReport, ServePool
from ma_ray.serving.stage_timing import (
    INFERENCE,
    LOAD_FAILURES_TOTAL,
    MODEL_LOAD,
    PARSING,
    ROUTING,
    SERIALIZATION,
    STAGE_SECONDS,
    STAGES,
    TIMING_HEADER,
    TRANSFORMATION,
    decode_timing,
    encode_timing,
    lookup_stage,
    shared_stage_metrics,
)
from ma_ray.serving.xgboost_trees import MAX_STEPS, XGBoostTrees

__all__ = [
    "DATATYPES",
    "DEEP_FRAMEWORKS",
    "DEFAULT_ROOT",
    "GATHER_GAP_S",
    "GPU_GROUP",
    "HEADER_LENGTH",
    "INFERENCE",
    "LOAD_FAILURES_TOTAL",
    "LOWER_GROUP",
    "MAX_STEPS",
    "MODEL_LOAD",
    "OUTPUT",
    "OUTPUT_DATATYPE",
    "PARSING",
    "POOL_DEPLOYMENTS",
    "PRECISIONS",
    "PREDICT_THREADS",
    "ROUTING",
    "SERIALIZATION",
    "STAGES",
    "STAGE_SECONDS",
    "STALENESS_SECONDS",
    "TIER1_GROUP",
    "TIMING_HEADER",
    "TRANSFORMATION",
    "CacheFullError",
    "EntityKeyError",
    "FeatureAnswer",
    "FeatureMetrics",
    "FeatureResolver",
    "GroupSize",
    "InferRequest",
    "InferenceProtocolError",
    "LoadingPolicy",
    "LocalArtifact",
    "LocalArtifactCache",
    "LookupRecord",
    "MetaColumn",
    "ModelInputs",
    "ModelProfile",
    "PlacementPlanner",
    "Precision",
    "Predictor",
    "RequestCoalescer",
    "Resolution",
    "Rollout",
    "RolloutReport",
    "ServePool",
    "ServingCatalog",
    "TierAwareModelCache",
    "UnknownReferenceError",
    "XGBoostTrees",
    "apply_precision",
    "check_precision",
    "decode_timing",
    "encode_timing",
    "group_sizes",
    "infer_grouped",
    "infer_request_from_message",
    "infer_response",
    "input_dtype",
    "loading_policy",
    "lookup_stage",
    "model_metadata",
    "parse_infer_request",
    "pool_serve_deployment",
    "preemptive_loads",
    "request_rows",
    "serving_framework",
    "shared_feature_metrics",
    "shared_stage_metrics",
]
