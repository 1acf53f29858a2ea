"""`ma_ray.batched_counter`: counts summed in the process, handed to Ray's counter once per export."""

from __future__ import annotations

import threading

import pytest

from ma_ray.batched_counter import BatchedCounter
from ma_ray.periodic_export import PeriodicExport
from tests.polling import wait_for


class Increments:
    """What the counter handed over: every ``inc(value, tags)`` call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, str]]] = []

    def __call__(self, value: float, tags: dict[str, str]) -> None:
        if value <= 0:  # what Ray's Counter.inc refuses
            raise ValueError(f"value must be >0, got {value}")
        self.calls.append((value, tags))

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for value, tags in self.calls:
            out[tags["tier"]] = out.get(tags["tier"], 0.0) + value
        return out


def test_an_export_hands_each_tag_sets_sum_once_and_starts_again() -> None:
    increments = Increments()
    counter = BatchedCounter("values_total", ("tier",), increments)
    l1 = counter.bound({"tier": "l1"})
    for value in (1, 2, 3):
        l1.record(value)
    counter.record(4, {"tier": "redis"})
    counter.export()
    assert sorted(increments.calls, key=lambda call: call[1]["tier"]) == [(6, {"tier": "l1"}), (4, {"tier": "redis"})]
    counter.export()  # nothing new: nothing handed over (Ray refuses an increment of zero)
    assert len(increments.calls) == 2
    l1.record(0)  # a zero counts nothing and is not an error
    l1.record(0.5)
    counter.export()
    assert increments.calls[-1] == (0.5, {"tier": "l1"}) and len(increments.calls) == 3


def test_bad_counts_and_tags_are_refused_where_they_are_made() -> None:
    counter = BatchedCounter("values_total", ("tier",), Increments())
    with pytest.raises(ValueError, match="only goes up: got -1"):
        counter.record(-1, {"tier": "l1"})
    with pytest.raises(ValueError, match=r"tags \['group'\] are not the counter's tag keys \['tier'\]"):
        counter.bound({"group": "g"})
    with pytest.raises(ValueError, match="tag keys"):
        counter.record(1)


def test_counts_from_many_threads_add_up_exactly_while_exports_run() -> None:
    increments = Increments()
    counter = BatchedCounter("values_total", ("tier",), increments)
    bound = counter.bound({"tier": "l1"})
    done = threading.Event()

    def exporting() -> None:
        while not done.is_set():
            counter.export()

    def counting() -> None:
        for _ in range(20_000):
            bound.record(1)

    exporter = threading.Thread(target=exporting)
    exporter.start()
    workers = [threading.Thread(target=counting) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    exporter.join()
    counter.export()
    assert increments.totals() == {"l1": 80_000}


def test_the_periodic_export_hands_counts_over_from_its_thread() -> None:
    increments = Increments()
    export = PeriodicExport(interval_s=0.05)
    counter = export.add(BatchedCounter("values_total", ("tier",), increments))
    try:
        counter.record(2, {"tier": "l1"})
        wait_for(lambda: increments.totals() == {"l1": 2}, 10, interval_s=0.02)
        counter.record(3, {"tier": "l1"})
    finally:
        export.close()
    assert increments.totals() == {"l1": 5}  # closing hands over what came since the last export
