"""Streaming path throughput and freshness: generated trip events in Kafka -> aggregation actors -> online store.

Figures (issue 5): events/s from Kafka through validation, windowed aggregation and online writes (and the
offline log) for a backlog of pre-produced events, with 2 actors over 4 partitions on a 2-CPU local Ray;
p99 freshness (the oldest event of a micro-batch produced -> its aggregates written to the online store)
while events are produced at --rate. Issue 15: the same freshness where readers see it, over HTTP and through a
prediction replica's resolver, on Kafka + Cassandra + Redis with readers polling all along (`_reader_freshness`).
Run alone: `python bench/stream_pipeline.py [--events 200000] [--rate 20000] [--stores cassandra,sqlite]
[--reader-seconds 10]` with `ma-ray services up`.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
import uuid
from dataclasses import replace
from importlib import resources

import _reader_freshness
import numpy as np
import ray
from _harness import Result, Target, report

from actors.stream_aggregator import ensure_topic
from apps.stream_pipeline import encode_events, generated_events, replay, start_actors
from ma_ray.config import load_settings
from ma_ray.connections import kafka_admin
from ma_ray.datagen import RideshareConfig
from ma_ray.palette import load_repository

GROUP = "driver_realtime"
PARTITIONS = 4
ACTORS = 2


def records(total: int) -> list[tuple[bytes, bytes]]:
    config = RideshareConfig(trips=max(10_000, total // 3), days=7, chunk_trips=25_000)
    found: list[tuple[bytes, bytes]] = []
    for table in generated_events(config):
        found += encode_events(table)
        if len(found) >= total:
            break
    return found[:total]


def run_actors(repo, topic: str, overrides: dict, batch_size: int, **run: object) -> tuple[list[dict], float]:
    handles = start_actors(repo, GROUP, topic, PARTITIONS, ACTORS, overrides, batch_size=batch_size)
    try:
        ray.get([h.lag.remote() for h in handles])  # constructed and assigned before the clock starts
        started = time.perf_counter()
        futures = [h.run.remote(**run) for h in handles]
        return started, handles, futures
    except Exception:
        for handle in handles:
            ray.kill(handle)
        raise


def finish(handles, futures) -> list[dict]:
    try:
        return ray.get(futures)
    finally:
        for handle in handles:
            ray.kill(handle)


def bench_throughput(settings, repo, overrides: dict, events: list, batch_size: int) -> list[Result]:
    topic = f"bench-trips-{uuid.uuid4().hex[:8]}"
    ensure_topic(settings, topic, PARTITIONS)
    replay(settings, topic, events)
    started, handles, futures = run_actors(repo, topic, overrides, batch_size)
    reports = finish(handles, futures)
    elapsed = time.perf_counter() - started
    kafka_admin(settings).delete_topics([topic, f"{topic}.dead-letter"])
    consumed = sum(r["events"] for r in reports)
    assert consumed == len(events), f"consumed {consumed} of {len(events)} events"
    return [
        Result(
            f"backlog of {len(events):,} events, {ACTORS} actors x {PARTITIONS // ACTORS} partitions -> online store",
            round(consumed / elapsed),
            "events/s",
            target=Target("value", ">=", 20_000),
        ),
        Result("online rows written per event", round(sum(r["rows_written"] for r in reports) / consumed, 3), "rows"),
    ]


def bench_freshness(settings, repo, overrides: dict, events: list, rate: float, batch_size: int) -> list[Result]:
    topic = f"bench-live-{uuid.uuid4().hex[:8]}"
    ensure_topic(settings, topic, PARTITIONS)
    seconds = len(events) / rate
    started, handles, futures = run_actors(
        repo, topic, overrides, batch_size, until_caught_up=False, max_seconds=seconds + 3
    )
    replay(settings, topic, events, rate=rate)
    produced_in = time.perf_counter() - started
    reports = finish(handles, futures)
    kafka_admin(settings).delete_topics([topic, f"{topic}.dead-letter"])
    fresh = np.array(list(itertools.chain.from_iterable(r["freshness_us"] for r in reports))) / 1e6
    consumed = sum(r["events"] for r in reports)
    return [
        Result(f"producer rate reached (asked {rate:,.0f}/s)", round(len(events) / produced_in), "events/s"),
        Result("events aggregated while live", consumed, "events"),
        Result(
            f"freshness p99 at {rate:,.0f} events/s (produced -> written online)",
            round(float(np.percentile(fresh, 99)), 3),
            "s",
            target=Target("value", "<", 2.0),
        ),
        Result("freshness p50", round(float(np.percentile(fresh, 50)), 3), "s"),
    ]


def bench_store(store: str, settings, repo, events: list, args: argparse.Namespace) -> list[Result]:
    overrides = {"state_dir": tempfile.mkdtemp(prefix="bench-stream-"), "online_store": store}
    overrides["kafka_bootstrap"] = settings.kafka.bootstrap
    if store == "cassandra":
        overrides["cassandra_keyspace"] = f"bench_stream_{uuid.uuid4().hex[:8]}"
    try:
        results = bench_throughput(settings, repo, overrides, events[: args.events], args.batch_size)
        live = events[: int(args.rate * args.live_seconds)]
        results += bench_freshness(settings, repo, overrides, live, args.rate, args.batch_size)
    finally:
        if store == "cassandra":
            from ma_ray.palette.online.cassandra import CassandraOnlineStore

            cassandra = CassandraOnlineStore(load_settings(**overrides))
            cassandra.drop_keyspace()
            cassandra.close()
    for result in results:
        result.metric = f"[{store}] {result.metric}"
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--live-seconds", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--stores", default="cassandra,sqlite", help="online stores to measure, comma-separated")
    parser.add_argument("--reader-seconds", type=float, default=10.0, help="reader-visible freshness run (0: skip)")
    args = parser.parse_args()
    settings = load_settings()
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        repo = load_repository(path)
    events = records(max(args.events, int(args.rate * args.live_seconds)))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    results: list[Result] = []
    try:
        for store in args.stores.split(","):
            results += bench_store(store, settings, repo, events, args)
        if args.reader_seconds > 0:
            live = events[: int(args.rate * args.reader_seconds)]
            reader = _reader_freshness.bench(settings, live, args.rate, args.reader_seconds, probe_every_s=0.1)
            results += [replace(r, metric=f"[cassandra+redis, readers] {r.metric}") for r in reader]
    finally:
        ray.shutdown()
    report("stream_pipeline", results)


if __name__ == "__main__":
    main()
