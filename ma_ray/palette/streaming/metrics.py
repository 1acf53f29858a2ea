"""The streaming path's metrics: consumer lag, feature freshness, events, dead letters and late events.

Recorded by each aggregation actor, tagged with the catalog, the group and the actor, so lag and freshness can
be alerted on per streaming group against its SLA.
"""

from __future__ import annotations

from functools import cache

from ma_ray.metrics import MetricsBackend, default_backend

FRESHNESS_BOUNDARIES_S = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300]
CONSUMER_LAG = "ma_ray_stream_consumer_lag"
FRESHNESS_SECONDS = "ma_ray_stream_freshness_seconds"
EVENTS_TOTAL = "ma_ray_stream_events_total"
DEAD_LETTERS_TOTAL = "ma_ray_stream_dead_letters_total"
LATE_EVENTS_TOTAL = "ma_ray_stream_late_events_total"
METRIC_NAMES = (CONSUMER_LAG, FRESHNESS_SECONDS, EVENTS_TOTAL, DEAD_LETTERS_TOTAL, LATE_EVENTS_TOTAL)
TAGS = ("catalog", "group", "actor")


class StreamMetrics:
    def __init__(self, backend: MetricsBackend | None = None) -> None:
        backend = backend or default_backend()
        self.lag = backend.gauge(CONSUMER_LAG, "Messages in an actor's partitions not yet aggregated", TAGS)
        self.freshness = backend.histogram(
            FRESHNESS_SECONDS,
            "Event produced -> its aggregates written online (oldest event of each micro-batch)",
            FRESHNESS_BOUNDARIES_S,
            TAGS,
        )
        self.events = backend.counter(EVENTS_TOTAL, "Valid events aggregated", TAGS)
        self.dead_letters = backend.counter(
            DEAD_LETTERS_TOTAL, "Events sent to the dead-letter topic", (*TAGS, "reason")
        )
        self.late = backend.counter(LATE_EVENTS_TOTAL, "Events older than every window of their entity", TAGS)

    def record_batch(self, tags: dict[str, str], events: int, late: int, freshness_s: float | None) -> None:
        if events:
            self.events.record(events, tags)
        if late:
            self.late.record(late, tags)
        if freshness_s is not None:
            self.freshness.record(freshness_s, tags)

    def record_dead_letter(self, tags: dict[str, str], reason: str) -> None:
        self.dead_letters.record(1, {**tags, "reason": reason})

    def record_lag(self, tags: dict[str, str], lag: int) -> None:
        self.lag.record(lag, tags)


@cache
def shared_stream_metrics() -> StreamMetrics:
    """One set per process: prometheus-client refuses to register a metric name twice."""
    return StreamMetrics()
