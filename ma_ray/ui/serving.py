"""The Serving page's latency table: p50/p95/p99 of each prediction stage, from the service's own histogram
(``ma_ray_prediction_stage_seconds``) as Ray's metrics endpoints export it, the way Prometheus'
``histogram_quantile`` computes it (linear inside the bucket). Pure over the exposition text."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

from ma_ray.serving import STAGE_SECONDS

QUANTILES = (0.5, 0.95, 0.99)


def stage_buckets(texts: Iterable[str]) -> dict[str, dict[float, float]]:
    """Cumulative bucket counts by stage (upper bound in seconds -> count), summed over pools and endpoints.
    Ray exports the histogram with its ``ray_`` prefix."""
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    wanted = {STAGE_SECONDS, f"ray_{STAGE_SECONDS}"}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in wanted:
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket") and "stage" in sample.labels:
                    buckets[sample.labels["stage"]][float(sample.labels["le"])] += sample.value
    return {stage: dict(counts) for stage, counts in buckets.items()}


def quantile_ms(q: float, cumulative: dict[float, float]) -> float | None:
    """The ``q`` quantile in milliseconds from cumulative buckets; None with no observations. Above the last
    finite bound it answers that bound, as Prometheus does."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower * 1000
            inside = count - below
            fraction = (rank - below) / inside if inside > 0 else 1.0
            return (lower + (bound - lower) * fraction) * 1000
        lower, below = bound, count
    return lower * 1000


def latency_table(texts: Iterable[str]) -> list[tuple[str, int, list[float | None]]]:
    """(stage, requests observed, [p50, p95, p99] ms) for every stage the histogram has seen."""
    rows = []
    for stage, cumulative in sorted(stage_buckets(texts).items()):
        count = int(max(cumulative.values(), default=0))
        rows.append((stage, count, [quantile_ms(q, cumulative) for q in QUANTILES]))
    return rows
