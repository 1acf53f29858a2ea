"""Batch/stream agreement on the sample repository: the same generated trip events, sent through the stream
path as JSON (parse, validate, micro-batches, a checkpoint restore) and through the batch aggregation,
give the same `driver_realtime` values at the end of a day."""

from __future__ import annotations

import random
from datetime import timedelta
from importlib import resources

import pyarrow.compute as pc

from apps.stream_pipeline import encode_events
from ma_ray.datagen.rideshare import TRIP_EVENT_SCHEMA, RideshareConfig, RideshareGenerator
from ma_ray.palette.pipelines import compute_snapshot, generate_pipelines
from ma_ray.palette.pipelines.spec import day_end, epoch_us
from ma_ray.palette.repository import load_repository
from ma_ray.palette.streaming import EventParser, Rejected, StreamAggregator

FAR_FUTURE = 2**62


def test_stream_and_batch_agree_on_the_sample_streaming_group() -> None:
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        repo = load_repository(path)
    plans = generate_pipelines(repo)
    plan = plans.plan("driver_realtime")
    assert plan in plans.streaming
    bound = plan.bind(TRIP_EVENT_SCHEMA)
    config = RideshareConfig(trips=10_000, chunk_trips=2_000, days=2)
    generator = RideshareGenerator(config)
    events = generator.trip_events(generator.trips(0))
    as_of = config.start_date + timedelta(days=1)
    end = epoch_us(day_end(as_of))
    events = events.filter(pc.less(pc.cast(events["event_ts"], "int64"), end))

    parser = EventParser(bound)
    records = encode_events(events)
    random.Random(3).shuffle(records)  # partitions interleave: arrival order is not event order
    aggregator = StreamAggregator(bound)
    for start in range(0, len(records), 700):
        parsed = [parser.parse(value, FAR_FUTURE) for _, value in records[start : start + 700]]
        assert not any(isinstance(p, Rejected) for p in parsed)
        aggregator.apply(parsed)
        if start == 2100:
            aggregator, _ = StreamAggregator.restore(bound, aggregator.checkpoint({"t:0": start}))

    snapshot = {row.pop("driver_id"): row for row in compute_snapshot([events], bound, as_of).to_pylist()}
    features = [a.spec.feature for a in bound.aggregations]
    assert len(snapshot) > 50 and any(row["trip_count_1h"] for row in snapshot.values())
    for driver in aggregator.entities:
        streamed = aggregator.values(driver, end - 1)
        batch = snapshot.get(driver, dict.fromkeys(features, 0))
        assert {f: streamed[f] for f in features} == {f: batch[f] for f in features}, driver
