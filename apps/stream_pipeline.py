"""The streaming feature pipeline: replay generated trip events into Kafka, and run the aggregation actors.

    python -m apps.stream_pipeline replay --topic trip-events --trips 50000 --days 1 --rate 20000
    python -m apps.stream_pipeline run --catalog rideshare --group driver_realtime --topic trip-events --actors 2

``replay`` produces the data generator's trip events (JSON, keyed by driver, ``event_ts`` in epoch
microseconds) into a topic at a chosen rate (0: as fast as possible), creating it if needed. ``run`` starts
one aggregation actor per group of partitions of the topic (`actors/stream_aggregator.py`) and runs them
until they have caught up (--follow: forever). The catalog comes from the meta store or --repository.
Exit status: 0 done, 1 an actor failed, 2 bad arguments or declarations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ma_ray.config import Settings, SettingsError, load_settings
from ma_ray.datagen import RAW_EVENT_SCHEMAS, RideshareConfig, RideshareGenerator
from ma_ray.palette import FeatureRepository, RepositoryError
from ma_ray.palette.pipelines import PipelineError


# ---- replay ----------------------------------------------------------------------------------------------------
def generated_events(config: RideshareConfig, chunks: int | None = None) -> Iterator[pa.Table]:
    """The generator's trip events, chunk by chunk (the first ``chunks`` chunks; default all)."""
    generator = RideshareGenerator(config)
    for chunk in range(min(chunks or config.chunks, config.chunks)):
        yield generator.trip_events(generator.trips(chunk))


def encode_events(events: pa.Table) -> list[tuple[bytes, bytes]]:
    """(key, value) Kafka records: key the driver id, value the event as JSON with ``event_ts`` in micros."""
    micros = pc.cast(events["event_ts"], pa.int64())
    table = events.set_column(events.schema.get_field_index("event_ts"), "event_ts", micros)
    return [(row["driver_id"].encode(), json.dumps(row).encode()) for row in table.to_pylist()]


def replay(settings: Settings, topic: str, records: Iterable[tuple[bytes, bytes]], rate: float = 0.0) -> int:
    """Produce records at ``rate`` per second (0: unpaced); returns how many were produced."""
    from confluent_kafka import Producer

    from ma_ray.connections import kafka_producer_config

    producer = Producer(kafka_producer_config(settings))
    started, sent = time.monotonic(), 0
    for key, value in records:
        produce_one(producer, topic, key, value)
        sent += 1
        if sent % 1000 == 0:
            producer.poll(0)
            ahead = sent / rate - (time.monotonic() - started) if rate > 0 else 0
            if ahead > 0:
                time.sleep(ahead)
    if producer.flush(60) != 0:
        raise RuntimeError(f"{topic}: some events were not delivered within 60 s")
    return sent


def produce_one(producer: Any, topic: str, key: bytes, value: bytes) -> None:
    """Produce one record, waiting for room when the producer's queue is full."""
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            return
        except BufferError:
            producer.poll(0.05)


# ---- run -------------------------------------------------------------------------------------------------------
def partition_groups(partitions: int, actors: int) -> list[tuple[int, ...]]:
    """Partitions 0..n-1 dealt round-robin over ``actors`` actors (no actor gets none)."""
    actors = max(1, min(actors, partitions))
    return [tuple(range(i, partitions, actors)) for i in range(actors)]


def start_actors(
    repo: FeatureRepository,
    group: str,
    topic: str,
    partitions: int,
    actors: int,
    settings_overrides: dict[str, Any] | None = None,
    consumer_group: str | None = None,
    **config: Any,
) -> list[Any]:
    """One aggregation actor per partition group, named (and checkpointed) by catalog, group, topic, index."""
    from actors.stream_aggregator import StreamAggregatorActor, StreamConfig
    from ma_ray.palette.pipelines import generate_pipelines

    schema = raw_event_schema(generate_pipelines(repo).plan(group).raw_source)
    handles = []
    for i, owned in enumerate(partition_groups(partitions, actors)):
        name = f"{repo.catalog}.{group}.{topic}.{i}"
        cfg = StreamConfig(topic, owned, consumer_group or f"ma-ray.{repo.catalog}.{group}", name, **config)
        handles.append(
            StreamAggregatorActor.options(name=name).remote(repo, group, cfg, settings_overrides, event_schema=schema)
        )
    return handles


def raw_event_schema(raw_source: str) -> pa.Schema:
    """The event schema of a raw source this app streams (the rideshare world's)."""
    if raw_source not in RAW_EVENT_SCHEMAS:
        known = ", ".join(sorted(RAW_EVENT_SCHEMAS))
        raise PipelineError(f"no event schema is known for raw source '{raw_source}' (streamed sources: {known})")
    return RAW_EVENT_SCHEMAS[raw_source]


def topic_partitions(settings: Settings, topic: str) -> int:
    from ma_ray.connections import kafka_admin

    metadata = kafka_admin(settings).list_topics(topic, timeout=30)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise PipelineError(f"Kafka topic '{topic}' does not exist on {settings.kafka.bootstrap}")
    return len(found.partitions)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        settings = load_settings(**({"ray_address": args.ray_address} if args.ray_address else {}))
        if args.command == "replay":
            return _replay(args, settings)
        return _run(args, settings)
    except (SettingsError, RepositoryError, PipelineError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from actors.stream_aggregator import ensure_topic

    config = RideshareConfig(seed=args.seed, trips=args.trips, days=args.days)
    ensure_topic(settings, args.topic, args.partitions)
    records = (record for table in generated_events(config, args.chunks) for record in encode_events(table))
    started = time.monotonic()
    sent = replay(settings, args.topic, records, args.rate)
    elapsed = time.monotonic() - started
    print(json.dumps({"topic": args.topic, "events": sent, "seconds": round(elapsed, 2)}))
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import ray

    from apps.batch_pipeline import repository_from_args
    from ma_ray.ray_runtime import init_ray

    repo = repository_from_args(args, settings)
    plan = _streaming_plan(repo, args.group)
    partitions = topic_partitions(settings, args.topic)
    init_ray(settings)
    # the actors see exactly these settings, whatever their workers' environment and working directory
    overrides = {**settings.model_dump(mode="json"), "state_dir": str(settings.state_dir.absolute())}
    handles = start_actors(
        repo,
        plan.group,
        args.topic,
        partitions,
        args.actors,
        overrides,
        batch_size=args.batch_size,
        log_offline=not args.no_log,
    )
    try:
        reports = ray.get([h.run.remote(until_caught_up=not args.follow) for h in handles])
    except ray.exceptions.RayError as error:
        print(f"error: an aggregation actor failed: {error}", file=sys.stderr)
        return 1
    for report in reports:
        report.pop("freshness_us", None)
        report.pop("config", None)
    print(json.dumps(reports, indent=2, default=str))
    return 0


def _streaming_plan(repo: FeatureRepository, group: str):
    from ma_ray.palette.pipelines import generate_pipelines

    pipelines = generate_pipelines(repo)
    plan = pipelines.plan(group)
    if plan not in pipelines.streaming:
        raise PipelineError(f"{plan.snapshot_id} is a {plan.source} group; the streaming path runs streaming groups")
    return plan


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m apps.stream_pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ray-address", help="join this Ray cluster (default: settings)")
    commands = parser.add_subparsers(dest="command", required=True)
    rep = commands.add_parser("replay", help="produce generated trip events into a Kafka topic")
    rep.add_argument("--topic", required=True)
    rep.add_argument("--partitions", type=int, default=4, help="partitions if the topic is created")
    rep.add_argument("--trips", type=int, default=50_000)
    rep.add_argument("--days", type=int, default=28)
    rep.add_argument("--seed", type=int, default=7)
    rep.add_argument("--chunks", type=int, default=None, help="only the first N generator chunks")
    rep.add_argument("--rate", type=float, default=0.0, help="events per second (0: as fast as possible)")
    run = commands.add_parser("run", help="run the aggregation actors of a streaming group")
    run.add_argument("--catalog", default="rideshare")
    run.add_argument("--repository", help="a feature repository directory instead of the meta store")
    run.add_argument("--group", default="driver_realtime")
    run.add_argument("--topic", required=True)
    run.add_argument("--actors", type=int, default=2)
    run.add_argument("--batch-size", type=int, default=5000)
    run.add_argument("--no-log", action="store_true", help="skip the offline log of what serving saw")
    run.add_argument("--follow", action="store_true", help="keep consuming instead of stopping when caught up")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
