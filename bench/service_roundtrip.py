"""Calibration: one round trip to each real service through ma-ray's clients against the raw client.

Redis GET, a prepared Cassandra point read, and a Kafka produce -> consume of one event, each timed in
alternation with its raw-client baseline in the same run. Run alone with `python bench/service_roundtrip.py`
(the services must be up: `ma-ray services up`).
"""

from __future__ import annotations

import uuid

import numpy as np
import redis
from _harness import Result, interleaved_latencies_us, percentiles_vs, report
from cassandra.cluster import Cluster
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic

from ma_ray.config import Settings, load_settings
from ma_ray.connections import (
    ONLINE_READ_PROFILE,
    cassandra_cluster,
    kafka_admin,
    kafka_consumer_config,
    kafka_producer_config,
    redis_client,
)


def percentile_results(service: str, samples: dict[str, np.ndarray]) -> list[Result]:
    return percentiles_vs(lambda q: f"{service} round trip p{q}", samples["project"], samples["raw"])


def bench_redis(settings: Settings) -> list[Result]:
    project = redis_client(settings)
    host, port = settings.redis.host_port
    raw = redis.Redis(host=host, port=port)
    key = f"bench:{uuid.uuid4().hex}"
    raw.set(key, b"x" * 64)
    samples = interleaved_latencies_us({"project": lambda: project.get(key), "raw": lambda: raw.get(key)}, 3000)
    raw.delete(key)
    return percentile_results("redis GET", samples)


def bench_cassandra(settings: Settings) -> list[Result]:
    project_cluster = cassandra_cluster(settings)
    raw_cluster = Cluster(settings.cassandra.hosts, port=settings.cassandra.port)
    project, raw = project_cluster.connect(), raw_cluster.connect()
    project.execute(
        "CREATE KEYSPACE IF NOT EXISTS bench WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', '{settings.cassandra.local_dc}': 1}}"
    )
    project.execute("CREATE TABLE IF NOT EXISTS bench.kv (k text PRIMARY KEY, v blob)")
    project.execute("INSERT INTO bench.kv (k, v) VALUES ('key', 0x00112233)")
    query = "SELECT v FROM bench.kv WHERE k = ?"
    project_select, raw_select = project.prepare(query), raw.prepare(query)
    project_select.is_idempotent = True
    samples = interleaved_latencies_us(
        {
            "project": lambda: project.execute(project_select, ("key",), execution_profile=ONLINE_READ_PROFILE).one(),
            "raw": lambda: raw.execute(raw_select, ("key",)).one(),
        },
        1500,
    )
    project_cluster.shutdown()
    raw_cluster.shutdown()
    return percentile_results("cassandra prepared read", samples)


def _kafka_round_trip(producer: Producer, consumer: Consumer, topic: str) -> None:
    producer.produce(topic, value=b"e" * 64)
    producer.flush(10)
    while True:
        message = consumer.poll(5.0)
        if message is None:
            raise TimeoutError(f"no event came back from {topic} within 5s")
        if message.error() is None:
            return


def bench_kafka(settings: Settings) -> list[Result]:
    topics = {name: f"bench-{name}-{uuid.uuid4().hex[:8]}" for name in ("project", "raw")}
    admin = kafka_admin(settings)
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in topics.values()]).values():
        future.result(timeout=30)
    raw_config = {"bootstrap.servers": settings.kafka.bootstrap}
    pairs = {
        "project": (
            Producer(kafka_producer_config(settings)),
            Consumer(kafka_consumer_config(settings, topics["project"])),
        ),
        "raw": (
            Producer(raw_config),
            Consumer({**raw_config, "group.id": topics["raw"], "auto.offset.reset": "earliest"}),
        ),
    }
    for name, (_, consumer) in pairs.items():
        consumer.subscribe([topics[name]])
    calls = {name: (lambda p=p, c=c, t=topics[name]: _kafka_round_trip(p, c, t)) for name, (p, c) in pairs.items()}
    samples = interleaved_latencies_us(calls, 300, warmup=10)
    for _, consumer in pairs.values():
        consumer.close()
    admin.delete_topics(list(topics.values()))
    return percentile_results("kafka produce->consume", samples)


def main() -> None:
    settings = load_settings()
    results = bench_redis(settings) + bench_cassandra(settings) + bench_kafka(settings)
    report("service_roundtrip", results)


if __name__ == "__main__":
    main()
