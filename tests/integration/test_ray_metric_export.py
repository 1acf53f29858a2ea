"""ma-ray's metrics recorded in a Ray actor reach Ray's Prometheus endpoint: a histogram as Prometheus' histogram
series (`ma_ray.gauge_histogram`), with exact counts and sum, readable by the UI's ``histogram_quantile``; a counter
summed in the process (`ma_ray.batched_counter`) as Ray's counter, with the exact total."""

from __future__ import annotations

import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from ma_ray.ui.serving import quantile_table
from tests.polling import wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")


def samples(text: str, name: str) -> list[tuple[str, dict[str, str], float]]:
    """(series suffix: ``_bucket``, ``_sum`` or ``_count``; labels; value) of every sample of ``name``."""
    return [
        (sample.name.removeprefix(name), sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(name)
    ]


def test_an_actors_histogram_reaches_the_endpoint_exactly(ray_metrics_url: str) -> None:
    import ray

    @ray.remote(num_cpus=0)
    class Recorder:
        def __init__(self, name: str) -> None:
            from ma_ray.metrics import default_backend

            self.histogram = default_backend().histogram(name, "a probe", [0.001, 0.01, 0.1], ("stage",))

        def record(self, values: list[float], stage: str) -> None:
            bound = self.histogram.bound({"stage": stage})
            for value in values:
                bound.record(value)

    name = f"ma_ray_test_probe_{uuid.uuid4().hex[:8]}_seconds"
    recorders = [Recorder.remote(name) for _ in range(2)]  # two workers on one node: their series add up
    ray.get(recorders[0].record.remote([0.0005, 0.001, 0.05], "parsing"))
    ray.get(recorders[1].record.remote([0.2], "parsing"))
    exported = f"ray_{name}"

    def complete() -> str:
        text = requests.get(ray_metrics_url, timeout=5).text
        counts = [value for series, _, value in samples(text, exported) if series == "_count"]
        return text if sorted(counts) == [1.0, 3.0] else ""

    text = wait_for(complete, 60, f"both workers' counts of {exported} on {ray_metrics_url}", interval_s=1)
    lines = [line for line in text.splitlines() if line.startswith(f"{exported}_bucket")]
    assert len(lines) == 2 * 4 and all('WorkerId="' in line for line in lines)  # one series set per worker
    buckets: dict[str, float] = {}
    sums = 0.0
    for series, labels, value in samples(text, exported):
        if series == "_bucket":
            buckets[labels["le"]] = buckets.get(labels["le"], 0.0) + value
        elif series == "_sum":
            sums += value
    assert buckets == {"0.001": 2.0, "0.01": 2.0, "0.1": 3.0, "+Inf": 4.0}  # a value at a bound counts in it
    assert sums == pytest.approx(0.2515)  # exact: Ray's own histograms rebuild it from bucket midpoints
    [(stage, count, (p50, _, _))] = quantile_table([text], name, "stage")
    assert (stage, count) == ("parsing", 4) and p50 == pytest.approx(0.001)


def test_an_actors_counter_reaches_the_endpoint_exactly(ray_metrics_url: str) -> None:
    import ray

    @ray.remote(num_cpus=0)
    class Counting:
        def __init__(self, name: str) -> None:
            from ma_ray.metrics import default_backend

            self.by_tier = default_backend().counter(name, "a probe", ("tier",))

        def count(self, values: list[float], tier: str) -> None:
            bound = self.by_tier.bound({"tier": tier})
            for value in values:
                bound.record(value)

    name = f"ma_ray_test_probe_{uuid.uuid4().hex[:8]}_total"
    counting = Counting.remote(name)
    ray.get(counting.count.remote([1, 2, 3], "l1"))
    ray.get(counting.count.remote([4], "redis"))
    ray.get(counting.count.remote([0.5], "l1"))  # a second export interval may split the sums: the totals hold
    exported = f"ray_{name}"

    def totals() -> dict[str, float]:
        text = requests.get(ray_metrics_url, timeout=5).text
        found = {labels["tier"]: value for series, labels, value in samples(text, exported) if "tier" in labels}
        return found if found == {"l1": 6.5, "redis": 4.0} else {}

    found = wait_for(totals, 60, f"the totals of {exported} on {ray_metrics_url}", interval_s=1)
    assert found == {"l1": 6.5, "redis": 4.0}  # summed in the worker, each tag set's total exact
