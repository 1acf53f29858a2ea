"""The prediction service's boundaries: the HTTP request and response bodies and the app's arguments.

No `from __future__ import annotations` here: FastAPI and pydantic read the real annotations."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ma_ray.serving import (
    GATHER_GAP_S,
    GPU_GROUP,
    LOWER_GROUP,
    POOL_DEPLOYMENTS,
    TIER1_GROUP,
    Precision,
    check_precision,
)

MAX_ROWS = 1000
FRONT = POOL_DEPLOYMENTS[TIER1_GROUP]  # the deployment that takes HTTP: the tier-1 pool
DEPLOYMENTS = (FRONT, POOL_DEPLOYMENTS[LOWER_GROUP], POOL_DEPLOYMENTS[GPU_GROUP])


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, str | int | float | bool | None]] = Field(
        min_length=1, max_length=MAX_ROWS, description="entity keys (driver_id, ...) and request fields per row"
    )


class PredictQuery(BaseModel):
    """`:predict`'s query parameters (names it does not know are ignored, as FastAPI's own parameters were)."""

    version: int | None = Field(default=None, ge=1, le=2**31 - 1, description="pin a version")
    alias: str = Field(default="production", description="resolve this alias when no version is pinned")


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[float]
    degraded: bool = Field(description="some features were defaults: the store failed or was too slow")
    stream_fallback: list[str] = Field(
        default=[], description="streaming groups whose batch values were used: their stream lags its SLA"
    )
    timing_ms: dict[str, float]
    warnings: list[str] = Field(default=[], description="e.g. a version that failed to load and what served instead")


class ErrorResponse(BaseModel):
    detail: str = Field(description="what was wrong and how to fix it")


class ServingOptions(BaseModel):
    """``build_app`` args ``serving``: the pools' cache, loading and hardware settings."""

    model_config = ConfigDict(extra="forbid")

    cache_budget_mb: float | None = Field(
        default=None, gt=0, description="a replica's model cache; default 80% of the node's memory (the seed's)"
    )
    grace_period_s: float = Field(default=300.0, ge=0, description="no eviction this soon after a model's last use")
    peak_hours_utc: list[int] = Field(
        default=[7, 8, 9, 17, 18, 19], description="hours in which tier-1 models are never evicted"
    )
    forecast_qps: dict[str, float] = Field(default={}, description="model name -> forecast QPS (placement, preloads)")
    gpus_per_replica: float = Field(default=0.0, ge=0, description="GPU pool replicas; 0 on CPU-only machines")
    deep_precision: Precision = Field(
        default="fp32", description="GPU pool models: fp32, fp16 (GPU or CPU) or int8 (dynamic quantization, CPU only)"
    )
    num_cpus_per_replica: float = Field(default=0.25, gt=0)
    max_batch_size: int = Field(default=32, ge=1, description="GPU pool: requests batched into one forward pass")
    batch_wait_timeout_s: float = Field(default=0.002, ge=0)
    coalesce_in_flight: int = Field(
        default=2, ge=1, description="front: calls in flight per model version; requests beyond share the next"
    )
    coalesce_max_rows: int = Field(default=256, ge=1, description="front: rows in one coalesced call")
    coalesce_gather_gap_s: float = Field(
        default=GATHER_GAP_S,
        ge=0,
        description="front: a request this close after the previous one finds the replica busy and lets the "
        "requests already received join its call (turns of the event loop, no timer); 0 turns it off",
    )
    artifact_cache_dir: str | None = Field(
        default=None, description="node-local directory of fetched artifacts; default <tmp>/ma_ray_artifact_cache"
    )
    artifact_cache_max_mb: float | None = Field(
        default=None,
        ge=0,
        description="disk budget of the node-local artifact cache: after a fetch, least recently used artifacts "
        "no replica has loaded are deleted; default unbounded",
    )
    replicas: dict[str, int] = Field(
        default={},
        description=f"deployment name ({', '.join(DEPLOYMENTS)}) -> replicas, over the planner's; 0 leaves a pool "
        f"out of the app ({FRONT} takes HTTP: at least 1)",
    )

    @field_validator("replicas")
    @classmethod
    def _known_deployments(cls, replicas: dict[str, int]) -> dict[str, int]:
        if "PredictionIngress" in replicas:
            raise ValueError(
                f"there is no PredictionIngress deployment any more: the tier-1 pool ({FRONT}) takes HTTP itself; "
                f"size {FRONT} instead"
            )
        unknown = sorted(set(replicas) - set(DEPLOYMENTS))
        if unknown:
            raise ValueError(f"unknown deployment(s) {', '.join(unknown)}; the app has {', '.join(DEPLOYMENTS)}")
        if replicas.get(FRONT, 1) < 1 or any(count < 0 for count in replicas.values()):
            raise ValueError(f"replicas must be >= 0, and {FRONT} (it takes HTTP) >= 1")
        return replicas

    @model_validator(mode="after")
    def _precision_fits_the_hardware(self) -> "ServingOptions":
        check_precision(self.deep_precision, "cuda" if self.gpus_per_replica > 0 else "cpu")
        return self


class AppArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    catalog: str = "rideshare"
    settings: dict[str, Any] | None = None
    serving: ServingOptions = ServingOptions()
