"""`ma_ray.gauge_histogram`: a histogram counted in the process and exported as gauges of Prometheus' histogram
series, checked against prometheus-client's own histogram."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ma_ray.gauge_histogram import BucketCounts, GaugeHistogram, le_label
from ma_ray.periodic_export import PeriodicExport
from tests.polling import wait_for

BOUNDS = [0.001, 0.002, 0.005, 0.01]
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Gauges:
    """What a gauge factory was asked to set: (series name, sorted tags) -> last value, and every set made."""

    def __init__(self) -> None:
        self.values: Series = {}
        self.sets = 0
        self.tag_keys: dict[str, tuple[str, ...]] = {}

    def __call__(self, name: str, description: str, tag_keys: Sequence[str]) -> Gauges.One:
        self.tag_keys[name] = tuple(tag_keys)
        return Gauges.One(self, name)

    class One:
        def __init__(self, owner: Gauges, name: str) -> None:
            self.owner, self.name = owner, name

        def set(self, value: float, tags: dict[str, str]) -> None:
            assert sorted(tags) == sorted(self.owner.tag_keys[self.name])  # what Ray's gauges insist on
            self.owner.values[(self.name, tuple(sorted(tags.items())))] = value
            self.owner.sets += 1


def prometheus_series(values: list[tuple[float, str]]) -> Series:
    """prometheus-client's histogram of the same observations, as its exposition's samples."""
    registry = CollectorRegistry()
    histogram = Histogram("lat_seconds", "d", ["stage"], buckets=BOUNDS, registry=registry)
    for value, stage in values:
        histogram.labels(stage=stage).observe(value)
    series: Series = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_sum", "_count")):
                series[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return series


def test_exported_series_equal_prometheus_clients_histogram() -> None:
    observations = [(0.0005, "parsing"), (0.001, "parsing"), (0.003, "parsing"), (0.7, "parsing"), (0.002, "routing")]
    gauges = Gauges()
    histogram = GaugeHistogram("lat_seconds", "d", BOUNDS, ("stage",), gauges)
    for value, stage in observations:
        histogram.record(value, {"stage": stage})
    histogram.export()
    expected = prometheus_series(observations)
    assert gauges.values.keys() == expected.keys()
    for key, value in expected.items():
        assert gauges.values[key] == pytest.approx(value), key  # a value at a bound counts in it (le)
    assert gauges.tag_keys == {
        "lat_seconds_bucket": ("stage", "le"),
        "lat_seconds_sum": ("stage",),
        "lat_seconds_count": ("stage",),
    }


def test_only_tag_sets_with_new_observations_are_set_again() -> None:
    gauges = Gauges()
    histogram = GaugeHistogram("lat_seconds", "d", BOUNDS, ("stage",), gauges)
    parsing, routing = histogram.bound({"stage": "parsing"}), histogram.bound({"stage": "routing"})
    parsing.record(0.001)
    routing.record(0.001)
    histogram.export()
    per_tag_set = len(BOUNDS) + 1 + 2  # the buckets with +Inf, the sum, the count
    assert gauges.sets == 2 * per_tag_set
    histogram.export()
    assert gauges.sets == 2 * per_tag_set  # nothing new
    parsing.record(0.02)
    histogram.export()
    assert gauges.sets == 3 * per_tag_set
    count = gauges.values[("lat_seconds_count", (("stage", "parsing"),))]
    assert count == 2 and gauges.values[("lat_seconds_sum", (("stage", "parsing"),))] == pytest.approx(0.021)
    assert histogram.bound({"stage": "parsing"}) is parsing  # bound once per tag set


def test_untagged_histogram_and_its_labels() -> None:
    gauges = Gauges()
    histogram = GaugeHistogram("age_seconds", "d", [1, 60, math.inf], (), gauges)
    histogram.record(30.0)
    histogram.export()
    assert gauges.values[("age_seconds_bucket", (("le", "60.0"),))] == 1
    assert gauges.values[("age_seconds_bucket", (("le", "+Inf"),))] == 1  # an infinite bound given is +Inf's own
    assert [le_label(b) for b in (0.0001, 1, 30.0, math.inf)] == ["0.0001", "1.0", "30.0", "+Inf"]
    assert BucketCounts([1.0, 2.0]).cumulative() == [0, 0, 0]


def test_bad_boundaries_and_tags_are_refused() -> None:
    with pytest.raises(ValueError, match="increasing order"):
        GaugeHistogram("x", "d", [0.1, 0.1], (), Gauges())
    with pytest.raises(ValueError, match="increasing order"):
        GaugeHistogram("x", "d", [], (), Gauges())
    histogram = GaugeHistogram("x", "d", BOUNDS, ("stage",), Gauges())
    with pytest.raises(ValueError, match="tag keys"):
        histogram.record(0.1, {"pool": "a"})
    with pytest.raises(ValueError, match="tag keys"):
        histogram.record(0.1)


def test_observations_from_many_threads_are_all_counted() -> None:
    gauges = Gauges()
    histogram = GaugeHistogram("lat_seconds", "d", BOUNDS, ("stage",), gauges)
    exporting = threading.Event()

    def exporter() -> None:
        while not exporting.is_set():
            histogram.export()

    def worker() -> None:
        bound = histogram.bound({"stage": "parsing"})
        for _ in range(20_000):
            bound.record(0.003)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    background = threading.Thread(target=exporter)
    background.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    exporting.set()
    background.join()
    histogram.export()
    tags = (("stage", "parsing"),)
    assert gauges.values[("lat_seconds_count", tags)] == 80_000
    assert gauges.values[("lat_seconds_bucket", (("le", "0.005"), *tags))] == 80_000
    assert gauges.values[("lat_seconds_bucket", (("le", "0.002"), *tags))] == 0


def test_periodic_export_sets_the_gauges_from_its_thread() -> None:
    gauges = Gauges()
    export = PeriodicExport(interval_s=0.05)
    histogram = export.add(GaugeHistogram("lat_seconds", "d", BOUNDS, (), gauges))
    try:
        histogram.record(0.004)
        wait_for(lambda: gauges.values.get(("lat_seconds_count", ())) == 1, 10, interval_s=0.02)
        histogram.record(0.004)
        wait_for(lambda: gauges.values.get(("lat_seconds_count", ())) == 2, 10, interval_s=0.02)
        histogram.record(0.004)
    finally:
        export.close()
    assert gauges.values[("lat_seconds_count", ())] == 3  # closing exports what came since the last export


def test_a_failing_gauge_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def set(self, value: float, tags: dict[str, str]) -> None:
            raise RuntimeError("metrics agent gone")

    gauges = Gauges()
    export = PeriodicExport(interval_s=0.05)
    bad = export.add(GaugeHistogram("bad", "d", BOUNDS, (), lambda *_: Broken()))
    good = export.add(GaugeHistogram("good", "d", BOUNDS, (), gauges))
    try:
        for histogram in (bad, good):
            histogram.record(0.001)
        wait_for(lambda: gauges.values.get(("good_count", ())) == 1, 10, interval_s=0.02)
        good.record(0.001)
        wait_for(lambda: gauges.values.get(("good_count", ())) == 2, 10, interval_s=0.02)  # the thread lives on
    finally:
        export.close()
    assert gauges.values[("good_count", ())] == 2
    assert "exporting a metric to Ray failed" in caplog.text and "metrics agent gone" in caplog.text
