"""The feature store's serving metrics, named after the seed's latency-breakdown rows and SLAs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cache

from ma_ray.metrics import ByLabel, MetricsBackend, default_backend

# Seconds: the seed's feature lookup budget is 0.5-10 ms, the request timeout 100 ms.
LATENCY_BOUNDARIES_S = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
STALENESS_BOUNDARIES_S = [1, 10, 60, 300, 3600, 6 * 3600, 86_400, 7 * 86_400, 28 * 86_400]
CACHE_TIERS = ("l1", "redis")

LOOKUP_SECONDS = "ma_ray_feature_lookup_seconds"
VALUES_TOTAL = "ma_ray_feature_values_total"
DEFAULTS_TOTAL = "ma_ray_feature_defaults_total"
STALENESS_SECONDS = "ma_ray_feature_staleness_seconds"
BREAKER_OPEN = "ma_ray_feature_store_breaker_open"
STREAM_FALLBACK_TOTAL = "ma_ray_feature_stream_fallback_total"
METRIC_NAMES = (LOOKUP_SECONDS, VALUES_TOTAL, DEFAULTS_TOTAL, STALENESS_SECONDS, BREAKER_OPEN, STREAM_FALLBACK_TOTAL)


@dataclass
class LookupRecord:
    """What one lookup served, counted per request and group (never per value): values per serving tier,
    defaults per reason, the oldest served value's age per group, groups served from batch values."""

    seconds: float
    served: Counter[str] = field(default_factory=Counter)
    defaults: Counter[str] = field(default_factory=Counter)
    oldest_s: dict[str, float] = field(default_factory=dict)  # "catalog.group" -> age of its oldest value
    stream_fallback: tuple[str, ...] = ()


class FeatureMetrics:
    """Lookup latency by cache hit/miss, values served per tier (the hit ratio), defaults by reason, the age of
    the oldest value each request got from each group, whether each backend's breaker is open, and lookups that
    got a streaming group's batch values because its stream lagged past the SLA. Recorded once per request,
    through instruments bound once per label value."""

    def __init__(self, backend: MetricsBackend | None = None) -> None:
        backend = backend or default_backend()
        self.lookup_seconds = backend.histogram(
            LOOKUP_SECONDS,
            "Feature lookup latency per request (cache: hit if no store read)",
            LATENCY_BOUNDARIES_S,
            ("cache",),
        )
        self.values = backend.counter(VALUES_TOTAL, "Feature values served, by the tier that served them", ("tier",))
        self.defaults = backend.counter(DEFAULTS_TOTAL, "Defaults served instead of stored values", ("reason",))
        self.staleness = backend.histogram(
            STALENESS_SECONDS,
            "Age of the oldest stored value served per request and feature group (now - feature timestamp)",
            STALENESS_BOUNDARIES_S,
            ("group",),
        )
        self.breaker_open = backend.gauge(BREAKER_OPEN, "1 while a backend's circuit breaker is open", ("backend",))
        self.stream_fallback = backend.counter(
            STREAM_FALLBACK_TOTAL, "Lookups served a streaming group's batch values (stream past its SLA)", ("group",)
        )
        self._by_cache = ByLabel(self.lookup_seconds, "cache")
        self._by_tier = ByLabel(self.values, "tier")
        self._by_reason = ByLabel(self.defaults, "reason")
        self._staleness_by_group = ByLabel(self.staleness, "group")
        self._fallback_by_group = ByLabel(self.stream_fallback, "group")
        self._breaker_by_backend = ByLabel(self.breaker_open, "backend")
        self._breakers_recorded: dict[str, str] = {}

    def record(self, lookup: LookupRecord, breakers: dict[str, str] | None = None) -> None:
        """One lookup's figures; ``breakers`` (backend -> state), when given, sets the gauges that changed."""
        cache = "hit" if lookup.served and all(tier in CACHE_TIERS for tier in lookup.served) else "miss"
        self._by_cache[cache].record(lookup.seconds)
        for tier, count in lookup.served.items():
            self._by_tier[tier].record(count)
        for reason, count in lookup.defaults.items():
            self._by_reason[reason].record(count)
        for group, seconds in lookup.oldest_s.items():
            self._staleness_by_group[group].record(seconds)
        for group in lookup.stream_fallback:
            self._fallback_by_group[group].record(1)
        if breakers is not None and breakers != self._breakers_recorded:  # a gauge holds its value: set on change
            for backend, state in breakers.items():
                self._breaker_by_backend[backend].record(1.0 if state == "open" else 0.0)
            self._breakers_recorded = dict(breakers)


@cache
def shared_feature_metrics() -> FeatureMetrics:
    """One set per process: prometheus-client refuses to register a metric name twice."""
    return FeatureMetrics()
