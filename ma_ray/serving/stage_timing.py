"""Per-stage latency of a prediction (the seed's "Latency Breakdown" rows): recorded as one Prometheus histogram
labelled by stage, and encoded for the ``X-MA-Timing`` response header a client may ask for.

The header uses the Server-Timing syntax (``parsing;dur=0.112, routing;dur=0.081``), durations in
milliseconds, so browsers' and proxies' tooling can read it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache

from ma_ray.metrics import BoundInstrument, ByLabel, MetricsBackend, default_backend

TIMING_HEADER = "X-MA-Timing"

# The seed's latency-breakdown rows, in request order. Feature lookup is one row per cache outcome: a hit is a
# request whose stored features all came from the L1 or Redis cache.
PARSING = "parsing"
ROUTING = "routing"
MODEL_LOAD = "model_load"  # not a row of the seed's table: the cold-start cost of a cache miss on the model
FEATURE_LOOKUP_HIT = "feature_lookup_hit"
FEATURE_LOOKUP_MISS = "feature_lookup_miss"
TRANSFORMATION = "transformation"
INFERENCE = "inference"
SERIALIZATION = "serialization"
STAGES = (
    PARSING,
    ROUTING,
    MODEL_LOAD,
    FEATURE_LOOKUP_HIT,
    FEATURE_LOOKUP_MISS,
    TRANSFORMATION,
    INFERENCE,
    SERIALIZATION,
)
_STAGE_NAMES = frozenset(STAGES)
CACHE_TIERS = frozenset({"l1", "redis"})
# Tiers of values that never touch a store: request fields and DSL-derived values.
LOCAL_TIERS = frozenset({"request", "dsl"})

STAGE_SECONDS = "ma_ray_prediction_stage_seconds"
REQUEST_SECONDS = "ma_ray_prediction_request_seconds"
LOAD_FAILURES_TOTAL = "ma_ray_model_load_failures_total"  # counted by the pools, next to their load stage
METRIC_NAMES = (STAGE_SECONDS, REQUEST_SECONDS, LOAD_FAILURES_TOTAL)
# Seconds: the seed's stages take 0.1-10 ms; model loads take up to tens of seconds.
BOUNDARIES_S = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]

_ENTRY = re.compile(r"^\s*([A-Za-z0-9_]+)\s*;\s*dur=([0-9]+(?:\.[0-9]+)?)\s*$")


def lookup_stage(tiers: Iterable[str]) -> str:
    """``feature_lookup_hit`` when every stored value came from a cache (or none was needed), else ``_miss``."""
    stored = [tier for tier in tiers if tier not in LOCAL_TIERS]
    return FEATURE_LOOKUP_HIT if all(tier in CACHE_TIERS for tier in stored) else FEATURE_LOOKUP_MISS


def encode_timing(stages_ms: Mapping[str, float]) -> str:
    """``{"parsing": 0.1123}`` -> ``"parsing;dur=0.112"`` (Server-Timing syntax, milliseconds)."""
    for name in stages_ms:
        if name not in _STAGE_NAMES and not re.fullmatch(r"[A-Za-z0-9_]+", name):  # the seed's rows need no check
            raise ValueError(f"stage name {name!r} must be letters, digits and underscores")
    return ", ".join(f"{name};dur={max(ms, 0.0):.3f}" for name, ms in stages_ms.items())


def decode_timing(header: str) -> dict[str, float]:
    """The inverse of :func:`encode_timing`; raises ValueError naming an entry it cannot read."""
    stages: dict[str, float] = {}
    for entry in filter(str.strip, header.split(",")):
        match = _ENTRY.match(entry)
        if match is None:
            raise ValueError(f"bad {TIMING_HEADER} entry {entry!r}: expected '<stage>;dur=<milliseconds>'")
        stages[match.group(1)] = float(match.group(2))
    return stages


class StageMetrics:
    """``ma_ray_prediction_stage_seconds{stage, pool}``: one histogram, one label value per stage; and the whole
    request, ``ma_ray_prediction_request_seconds{cache}`` (the seed's "Total (cache hit|miss)" rows)."""

    def __init__(self, backend: MetricsBackend | None = None) -> None:
        backend = backend or default_backend()
        self.stage_seconds = backend.histogram(
            STAGE_SECONDS, "Latency of one stage of a prediction request", BOUNDARIES_S, ("stage", "pool")
        )
        self.request_seconds = backend.histogram(
            REQUEST_SECONDS, "Latency of a whole prediction request, by feature cache outcome", BOUNDARIES_S, ("cache",)
        )

        self._by_stage: dict[tuple[str, str], BoundInstrument] = {}  # (stage, pool) -> bound once
        self._by_cache = ByLabel(self.request_seconds, "cache")

    def record(self, stages_ms: Mapping[str, float], pool: str = "") -> None:
        for stage, ms in stages_ms.items():
            bound = self._by_stage.get((stage, pool))
            if bound is None:
                if stage not in STAGES:
                    raise ValueError(f"unknown prediction stage {stage!r}; stages are {', '.join(STAGES)}")
                bound = self._by_stage[(stage, pool)] = self.stage_seconds.bound({"stage": stage, "pool": pool})
            bound.record(ms / 1000)

    def record_request(self, stages_ms: Mapping[str, float]) -> None:
        cache_outcome = "miss" if FEATURE_LOOKUP_MISS in stages_ms else "hit"
        self._by_cache[cache_outcome].record(sum(stages_ms.values()) / 1000)


@cache
def shared_stage_metrics() -> StageMetrics:
    """One set per process: prometheus-client refuses to register a metric name twice."""
    return StageMetrics()
