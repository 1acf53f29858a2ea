"""The demo's streaming stage: the last day's trip events through the streaming aggregation, in process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow.dataset as ds

from apps.stream_pipeline import encode_events
from ma_ray.datagen import read_raw
from ma_ray.datagen.rideshare import TRIP_EVENT_SCHEMA
from ma_ray.palette.online import OnlineTable, now_us, open_online_store
from ma_ray.palette.pipelines import generate_pipelines
from ma_ray.palette.streaming import EventParser, Rejected, StreamAggregator
from ma_ray.text_table import format_table

if TYPE_CHECKING:
    from apps.demo import DemoContext
    from ma_ray.palette.catalog import FeatureRepository

GROUP = "driver_realtime"
MICRO_BATCH = 2_000


def stage_stream(ctx: DemoContext, repo_loader: Callable[[DemoContext], FeatureRepository]) -> None:
    """Replay the last day's trip events as JSON through validation, event-time windows and micro-batch writes
    to the online store (embedded: an in-process source; with Kafka: `python -m apps.stream_pipeline`)."""
    repo = repo_loader(ctx)
    plan = generate_pipelines(repo).plan(GROUP)
    bound = plan.bind(TRIP_EVENT_SCHEMA)
    events = read_raw(ctx.raw_uri, "trip_events").to_table(filter=ds.field("date") == str(ctx.facts["as_of"]))
    records = encode_events(events.sort_by("event_ts"))
    parser, aggregator = EventParser(bound), StreamAggregator(bound)
    table = OnlineTable.of(repo, next(g for g in repo.groups if g.name == GROUP))
    store = open_online_store(ctx.settings)
    store.update(table)
    started, rejected = time.perf_counter(), 0
    try:
        for offset in range(0, len(records), MICRO_BATCH):
            parsed = [parser.parse(value, now_us()) for _, value in records[offset : offset + MICRO_BATCH]]
            rejected += sum(isinstance(p, Rejected) for p in parsed)
            changed = aggregator.apply([p for p in parsed if not isinstance(p, Rejected)])
            store.put(table, aggregator.rows(changed))
        elapsed = time.perf_counter() - started
        hot = ctx.facts["hot_drivers"]
        answers = store.get(table, hot, list(table.features), now_us())
    finally:
        store.close()
    print(
        f"{len(records):,} events of {ctx.facts['as_of']} in micro-batches of {MICRO_BATCH:,}: "
        f"{len(records) / elapsed:,.0f} events/s, {rejected} dead-lettered, {len(aggregator.entities):,} drivers"
    )
    rows = [(a.key, *(a.values.get(f) for f in table.features)) for a in answers]
    print(format_table(rows, ["driver", *table.features]))
    print(
        f"event stream: {ctx.settings.event_stream} source in process; with Kafka the same aggregation runs in "
        "actors fed by a consumer group: python -m apps.stream_pipeline replay|run"
    )
