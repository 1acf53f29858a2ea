"""Feature pipelines generated from the catalog's aggregation declarations.

`generate_pipelines(repo)` makes one `GroupPlan` per group; `BatchPipeline` runs the batch plans (raw Parquet
-> aggregations -> offline snapshot -> online store through `OnlineStoreDatasink`) with retries and run records,
computing in this process below `LOCAL_BELOW_ROWS` raw rows and on Ray Data above; the streaming plans are left
to the streaming path. `compute_snapshot` is the computation over Arrow blocks in one process.
"""

from ma_ray.palette.pipelines.aggregate import combine, compute_snapshot, finalize, partial_aggregate
from ma_ray.palette.pipelines.raw import RawDataMissingError, RawInput, find_raw_input
from ma_ray.palette.pipelines.runs import RetryPolicy, RunMode, RunRecord, RunStatus, RunStore
from ma_ray.palette.pipelines.spec import (
    MICROS_PER_SECOND,
    RAW_EVENT_TIME,
    AggregationSpec,
    BoundPlan,
    GroupPlan,
    PipelineError,
    PipelineSet,
    RawSchemaError,
    epoch_us,
    generate_pipelines,
)

__all__ = [
    "LOCAL_BELOW_ROWS",
    "MICROS_PER_SECOND",
    "RAW_EVENT_TIME",
    "AggregationSpec",
    "BatchPipeline",
    "BatchRunError",
    "BoundPlan",
    "GroupPlan",
    "OnlineStoreDatasink",
    "PipelineError",
    "PipelineSet",
    "RawDataMissingError",
    "RawInput",
    "RawSchemaError",
    "RetryPolicy",
    "RunMode",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "combine",
    "compute_snapshot",
    "epoch_us",
    "finalize",
    "find_raw_input",
    "generate_pipelines",
    "partial_aggregate",
]


def __getattr__(name: str) -> object:
    """The Ray-dependent parts load on first use, so plans and aggregation import without Ray Data."""
    if name in ("BatchPipeline", "BatchRunError", "LOCAL_BELOW_ROWS"):
        from ma_ray.palette.pipelines import batch

        return getattr(batch, name)
    if name == "OnlineStoreDatasink":
        from ma_ray.palette.pipelines.sink import OnlineStoreDatasink

        return OnlineStoreDatasink
    raise AttributeError(f"module 'ma_ray.palette.pipelines' has no attribute {name!r}")
