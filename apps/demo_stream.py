"""The demo's streaming stage: the last day's trip events through the streaming aggregation.

With ``event_stream=kafka`` the events go into a Kafka topic and the aggregation actors of
`actors/stream_aggregator.py` consume it, exactly as `python -m apps.stream_pipeline replay|run` does;
otherwise an in-process source feeds the same parser and windows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow.dataset as ds
import ray

from apps.stream_pipeline import encode_events, replay, start_actors, topic_partitions
from ma_ray.config import KafkaEventStreamConfig, Settings
from ma_ray.datagen import TRIP_EVENT_SCHEMA, read_raw
from ma_ray.palette.online import OnlineTable, now_us, open_online_store
from ma_ray.palette.pipelines import generate_pipelines
from ma_ray.palette.streaming import EventParser, Rejected, StreamAggregator
from ma_ray.text_table import format_table

if TYPE_CHECKING:
    from apps.demo import DemoContext
    from ma_ray.palette import FeatureRepository

GROUP = "driver_realtime"
MICRO_BATCH = 2_000
PARTITIONS = 2  # one aggregation actor per partition
DEFAULT_TOPIC = "demo.trip-events"


def stage_stream(ctx: DemoContext, repo_loader: Callable[[DemoContext], FeatureRepository]) -> None:
    """Replay the last day's trip events as JSON through validation, event-time windows and micro-batch writes
    to the online store: through Kafka and aggregation actors, or in process on embedded defaults."""
    repo = repo_loader(ctx)
    events = read_raw(ctx.raw_uri, "trip_events").to_table(filter=ds.field("date") == str(ctx.facts["as_of"]))
    records = encode_events(events.sort_by("event_ts"))
    table = OnlineTable.of(repo, next(g for g in repo.groups if g.name == GROUP))
    if isinstance(ctx.settings.event_stream, KafkaEventStreamConfig):
        summary, source = _through_kafka(ctx, repo, records)
    else:
        summary = _in_process(ctx, repo, table, records)
        source = "an in-process source (with Kafka: python -m apps.stream_pipeline replay|run)"
    store = open_online_store(ctx.settings)
    try:
        answers = store.get(table, ctx.facts["hot_drivers"], list(table.features), now_us())
    finally:
        store.close()
    print(
        f"{len(records):,} events of {ctx.facts['as_of']} in micro-batches of {MICRO_BATCH:,}: "
        f"{summary['events'] / summary['seconds']:,.0f} events/s, {summary['dead_letters']} dead-lettered, "
        f"{summary['entities']:,} drivers"
    )
    rows = [(a.key, *(a.values.get(f) for f in table.features)) for a in answers]
    print(format_table(rows, ["driver", *table.features]))
    print(f"event stream: {ctx.settings.event_stream.type}, through {source}")
    ctx.facts["stream"] = summary


def _in_process(
    ctx: DemoContext, repo: FeatureRepository, table: OnlineTable, records: list[tuple[bytes, bytes]]
) -> dict[str, float]:
    """Parse, aggregate and write the events in micro-batches in this process."""
    bound = generate_pipelines(repo).plan(GROUP).bind(TRIP_EVENT_SCHEMA)
    parser, aggregator = EventParser(bound), StreamAggregator(bound)
    store = open_online_store(ctx.settings)
    store.update(table)
    started, rejected = time.perf_counter(), 0
    try:
        for offset in range(0, len(records), MICRO_BATCH):
            parsed = [parser.parse(value, now_us()) for _, value in records[offset : offset + MICRO_BATCH]]
            rejected += sum(isinstance(p, Rejected) for p in parsed)
            changed = aggregator.apply([p for p in parsed if not isinstance(p, Rejected)])
            store.put(table, aggregator.rows(changed))
    finally:
        store.close()
    return {
        "events": len(records) - rejected,
        "dead_letters": rejected,
        "entities": len(aggregator.entities),
        "seconds": time.perf_counter() - started,
    }


def _through_kafka(
    ctx: DemoContext, repo: FeatureRepository, records: list[tuple[bytes, bytes]]
) -> tuple[dict[str, float], str]:
    """Produce the events into the topic, then run one aggregation actor per partition until caught up."""
    from actors.stream_aggregator import ensure_topic

    settings = ctx.settings
    topic = str(ctx.facts.get("topic") or DEFAULT_TOPIC)
    ensure_topic(settings, topic, PARTITIONS)
    partitions = topic_partitions(settings, topic)
    # A rerun finds the events already there: producing them again would count every trip twice.
    produce_started, produced = time.perf_counter(), 0
    if _events_in(settings, topic, partitions) == 0:
        produced = replay(settings, topic, records)
    produce_s = time.perf_counter() - produce_started
    # the actors see exactly these settings, whatever their workers' environment and working directory
    overrides: dict[str, Any] = {**settings.model_dump(mode="json"), "state_dir": str(settings.state_dir.absolute())}
    handles = start_actors(
        repo,
        GROUP,
        topic,
        partitions,
        partitions,
        overrides,
        consumer_group=f"ma-ray.demo.{topic}",
        batch_size=MICRO_BATCH,
    )
    try:
        ray.get([handle.report.remote() for handle in handles])  # started: the timing below is the consuming
        started = time.perf_counter()
        reports = ray.get([handle.run.remote(until_caught_up=True) for handle in handles])
        seconds = time.perf_counter() - started
    finally:
        for handle in handles:  # named actors: a later run on the same cluster starts its own
            ray.kill(handle)
    summary: dict[str, float] = {
        key: sum(int(r[key]) for r in reports) for key in ("events", "dead_letters", "entities")
    }
    summary["seconds"] = seconds
    return summary, (
        f"Kafka topic {topic} ({partitions} partitions, {produced:,} events produced in {produce_s:.1f}s) "
        f"and {len(handles)} aggregation actors"
    )


def _events_in(settings: Settings, topic: str, partitions: int) -> int:
    from confluent_kafka import Consumer, TopicPartition

    from ma_ray.connections import kafka_consumer_config, kafka_settled

    consumer = Consumer(kafka_consumer_config(settings, f"ma-ray.demo.{topic}.probe"))
    try:  # a topic just created may not have its partitions' leaders yet
        marks = [
            kafka_settled(lambda p=p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10))
            for p in range(partitions)
        ]
    finally:
        consumer.close()
    return sum(high - low for low, high in marks)
