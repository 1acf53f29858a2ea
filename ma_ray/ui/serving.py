"""What the platform's own histograms say, as Ray's metrics endpoints export them: each prediction stage's
p50/p95/p99 (``ma_ray_prediction_stage_seconds``) and each feature group's served-value age
(``ma_ray_feature_staleness_seconds``), computed as Prometheus' ``histogram_quantile`` does (linear inside the
bucket); and each model pool replica's state. Pure over the exposition text, but for `serve_pool_states`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

from ma_ray.serving import POOL_DEPLOYMENTS, STAGE_SECONDS, STALENESS_SECONDS

QUANTILES = (0.5, 0.95, 0.99)


def histogram_buckets(texts: Iterable[str], metric: str, label: str) -> dict[str, dict[float, float]]:
    """Cumulative bucket counts of ``metric`` by its ``label`` (upper bound -> count), summed over the other
    labels and the endpoints. Ray exports the histogram with its ``ray_`` prefix; its ``_bucket`` series come as a
    histogram's (prometheus-client, outside Ray) or as a gauge of their own (a Ray worker's:
    `ma_ray.gauge_histogram`)."""
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    wanted = {name for prefix in ("", "ray_") for name in (f"{prefix}{metric}", f"{prefix}{metric}_bucket")}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in wanted:
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket") and label in sample.labels:
                    buckets[sample.labels[label]][float(sample.labels["le"])] += sample.value
    return {value: dict(counts) for value, counts in buckets.items()}


def quantile(q: float, cumulative: dict[float, float]) -> float | None:
    """The ``q`` quantile from cumulative buckets, in the metric's unit; None with no observations. Above the
    last finite bound it answers that bound, as Prometheus does."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, count
    return lower


def quantile_table(
    texts: Iterable[str], metric: str, label: str, scale: float = 1.0
) -> list[tuple[str, int, list[float | None]]]:
    """(label value, observations, [p50, p95, p99] x ``scale``) for every value the histogram has seen."""
    rows = []
    for value, cumulative in sorted(histogram_buckets(texts, metric, label).items()):
        count = int(max(cumulative.values(), default=0))
        found = [quantile(q, cumulative) for q in QUANTILES]
        rows.append((value, count, [None if v is None else v * scale for v in found]))
    return rows


def latency_table(texts: Iterable[str]) -> list[tuple[str, int, list[float | None]]]:
    """Each prediction stage's p50/p95/p99 in milliseconds."""
    return quantile_table(texts, STAGE_SECONDS, "stage", scale=1000)


def staleness_table(texts: Iterable[str]) -> dict[str, tuple[int, list[float | None]]]:
    """Each feature group's (lookups observed, [p50, p95, p99] seconds) of its oldest served value's age."""
    return {group: (count, qs) for group, count, qs in quantile_table(texts, STALENESS_SECONDS, "group")}


def serve_pool_states(app: str = "prediction", timeout_s: float = 5.0) -> list[tuple[str, list[dict[str, object]]]]:
    """(pool, each replica's ``resident()``: models, cache bytes used of the budget, feature circuit breakers) for
    every model pool of the prediction application that runs; none when this process has no Ray or no Serve."""
    import ray

    if not ray.is_initialized():
        return []
    from ray import serve

    pools = []
    for deployment in POOL_DEPLOYMENTS.values():
        try:
            handle = serve.get_deployment_handle(deployment, app)
            states = list(handle.broadcast("resident").results(timeout_s=timeout_s))
        except Exception:
            continue
        pools.append((deployment, sorted(states, key=lambda state: str(state.get("replica")))))
    return pools
