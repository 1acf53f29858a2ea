"""Freshness where readers see it: event produced into Kafka -> its aggregate returned to a reader, on Kafka +
Cassandra + Redis, while readers poll hot drivers the whole time (so Redis stays warm, as in production).

Probe events ride in the generated stream at --rate: every --probe-every-s one `requested` event of a probe
driver of its own, its event time just past the newest event time produced so far. Before the run every probe
driver gets an older row (count 0) through the write path, and the readers poll every probe driver all along, so
each one's entry is warm in L1 and Redis with the old value when its probe lands (the case where a stale cache
would hide the new value). The probe is visible when a reader's answer for its driver carries a feature timestamp
at or past the probe's event time (only the probe, or the decay that follows it, writes such a row: the driver
has no other event); its freshness is that answer's arrival minus the probe's produce call. Two readers, side by
side:
- the HTTP feature API, `POST /features/v1/features:get` through Serve's proxy (apps/feature_api.py);
- a prediction replica's feature resolution: `actors.feature_server.FeatureServer`, the object each prediction
  replica resolves features with (apps/prediction/replica.py), polled in this process.
The write-side figure (produced -> written to the online store, reported by the actors) is the floor, from the
same run. bench/stream_pipeline.py runs it (`--reader-seconds`, 0 to skip) with `ma-ray services up`.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import ray
import requests
from _harness import Result, Target, free_port

from actors.feature_server import FeatureServer
from actors.stream_aggregator import ensure_topic
from apps.feature_api import build_app
from apps.stream_pipeline import produce_one, start_actors
from ma_ray.config import Settings, load_settings
from ma_ray.connections import kafka_admin, kafka_producer_config
from ma_ray.palette import FeatureRegistry, FeatureRepository, load_repository
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.palette.online import EntityRow, OnlineTable, open_online_store

GROUP = "driver_realtime"
REF = "@palette:rideshare:driver_realtime:trip_count_1h:driver_id"
PARTITIONS, ACTORS = 4, 2


@dataclass
class ProbeLog:
    """Each probe driver's probes as (event time, monotonic time of the produce call), and when each was seen."""

    drivers: list[str]
    sent: dict[str, tuple[int, float]] = field(default_factory=dict)  # driver -> (event time, produce call time)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, driver: str, feature_ts: int | None, arrived: float, found: dict) -> None:
        if feature_ts is None or driver in found:
            return
        with self.lock:
            probe = self.sent.get(driver)
        if probe is not None and feature_ts >= probe[0]:
            found[driver] = arrived - probe[1]


def produce(settings: Settings, topic: str, records: list, rate: float, probe_every_s: float, log: ProbeLog) -> int:
    """``records`` at ``rate``, with a probe every ``probe_every_s``; returns how many were produced."""
    from confluent_kafka import Producer

    producer = Producer(kafka_producer_config(settings))
    frontier = np.maximum.accumulate([json.loads(value)["event_ts"] for _, value in records])
    started = next_probe = time.monotonic()
    waiting = iter(log.drivers)
    for sent, (key, value) in enumerate(records, start=1):
        produce_one(producer, topic, key, value)
        now = time.monotonic()
        driver = next(waiting, None) if now >= next_probe else None
        if driver is not None:
            probe = {"driver_id": driver, "event_type": "requested", "event_ts": int(frontier[sent - 1]) + 1}
            with log.lock:
                log.sent[driver] = (probe["event_ts"], time.monotonic())
            produce_one(producer, topic, driver.encode(), json.dumps(probe).encode())
            next_probe = now + probe_every_s
        if sent % 500 == 0:
            producer.poll(0)
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    producer.flush(60)
    return len(records)


def seed_probe_drivers(settings: Settings, repo: FeatureRepository, drivers: list[str], first_event_ts: int) -> None:
    """An older row (count 0) for every probe driver, through the write path: Redis holds it when readers start."""
    table = OnlineTable.of(repo, next(g for g in repo.groups if g.name == GROUP))
    store = open_online_store(settings)
    try:
        store.update(table)
        old = first_event_ts - 7_200_000_000
        store.put(table, [EntityRow(d, old, {"trip_count_1h": 0, "completed_trips_1d": 0}) for d in drivers])
    finally:
        store.close()


def http_reader(url: str, hot: list[str], log: ProbeLog, stop: threading.Event, found: dict, count: list) -> None:
    session = requests.Session()
    drivers = [*log.drivers, *hot]
    body = {"rows": [{"driver_id": d} for d in drivers], "features": [REF]}
    while not stop.is_set():
        try:
            answer = session.post(url, json=body, timeout=10).json()
        except requests.RequestException:  # the proxy closed a kept-alive connection: a client reconnects
            session = requests.Session()
            continue
        arrived = time.monotonic()
        count[0] += 1
        for driver, row in zip(log.drivers, answer["rows"], strict=False):
            log.seen(driver, row[REF]["feature_ts"], arrived, found)


def resolver_reader(server: FeatureServer, hot: list[str], log: ProbeLog, stop: threading.Event, found: dict,
                    count: list) -> None:  # fmt: skip
    drivers = [*log.drivers, *hot]
    while not stop.is_set():
        result = server.resolver.resolve([{"driver_id": d} for d in drivers], [REF])
        arrived = time.monotonic()
        count[0] += 1
        for driver, row in zip(log.drivers, result.rows, strict=False):
            log.seen(driver, row.meta[REF].feature_ts, arrived, found)
        time.sleep(0.002)


def percentiles(found: dict) -> tuple[float, float, int]:
    values = np.array(list(found.values()))
    if not len(values):
        return float("nan"), float("nan"), 0
    return round(float(np.percentile(values, 50)), 3), round(float(np.percentile(values, 99)), 3), len(values)


def bench(settings: Settings, records: list, rate: float, seconds: float, probe_every_s: float) -> list[Result]:
    keyspace = f"bench_fresh_{uuid.uuid4().hex[:8]}"
    overrides = {**settings.model_dump(mode="json"), "state_dir": tempfile.mkdtemp(prefix="bench-fresh-"),
                 "online_store": "cassandra", "cassandra_keyspace": keyspace, "offline_uri": "",
                 "artifact_uri": "", "feature_timeout_s": 1.0}  # fmt: skip
    production = load_settings(**overrides)
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        repo = load_repository(path)
    meta = open_meta_store(production)
    FeatureRegistry(meta, user="bench").apply(repo)
    meta.close()
    topic = f"bench-fresh-{uuid.uuid4().hex[:8]}"
    ensure_topic(production, topic, PARTITIONS)
    port = free_port()
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"enable_access_log": False})
    serve.run(build_app({"catalog": "rideshare", "settings": overrides}), name="features", route_prefix="/features")
    url = f"http://127.0.0.1:{port}/features/v1/features:get"
    replica = FeatureServer("rideshare", overrides)
    hot = [key.decode() for key, _ in records[:200]][:20]
    live = records[: int(rate * seconds)]
    handles = start_actors(repo, GROUP, topic, PARTITIONS, ACTORS, overrides, batch_size=5000)
    log, stop = ProbeLog([f"drv_probe_{i:04d}" for i in range(int(seconds / probe_every_s))]), threading.Event()
    seed_probe_drivers(production, repo, log.drivers, json.loads(live[0][1])["event_ts"])
    found_http: dict = {}
    found_resolver: dict = {}
    counts = {"http": [0], "resolver": [0]}
    try:
        ray.get([h.lag.remote() for h in handles])
        futures = [h.run.remote(until_caught_up=False, max_seconds=seconds + 5) for h in handles]
        readers = [
            threading.Thread(target=http_reader, args=(url, hot, log, stop, found_http, counts["http"])),
            threading.Thread(target=resolver_reader, args=(replica, hot, log, stop, found_resolver,
                                                           counts["resolver"])),
        ]  # fmt: skip
        for thread in readers:
            thread.start()
        started = time.monotonic()
        produce(production, topic, live, rate, probe_every_s, log)
        produced_in = time.monotonic() - started
        reports = ray.get(futures)
        time.sleep(2.0)  # the last probes' answers
        stop.set()
        for thread in readers:
            thread.join(timeout=30)
    finally:
        for handle in handles:
            ray.kill(handle)
        serve.shutdown()
        kafka_admin(production).delete_topics([topic, f"{topic}.dead-letter"])
        replica.resolver.store.close()
    probes = len(log.sent)
    write_side = np.array(list(itertools.chain.from_iterable(r["freshness_us"] for r in reports))) / 1e6
    http50, http99, http_n = percentiles(found_http)
    res50, res99, res_n = percentiles(found_resolver)
    floor99 = round(float(np.percentile(write_side, 99)), 3)
    return [
        Result(f"producer rate reached (asked {rate:,.0f}/s)", round(len(live) / produced_in), "events/s"),
        Result("probes produced", probes, "probes"),
        Result("probes seen over HTTP (of those produced)", http_n, "probes", baseline=probes),
        Result("probes seen through the resolver (of those produced)", res_n, "probes", baseline=probes),
        Result("reader requests over HTTP", counts["http"][0], "requests"),
        Result("reader requests through the resolver", counts["resolver"][0], "requests"),
        Result("freshness p99, produced -> returned by POST /v1/features:get (HTTP)", http99, "s",
               baseline=floor99, target=Target("value", "<", 2.0)),
        Result("freshness p50, produced -> returned by POST /v1/features:get (HTTP)", http50, "s",
               target=Target("value", "<", 1.0)),
        Result("freshness p99, produced -> returned by a prediction replica's resolver", res99, "s",
               baseline=floor99, target=Target("value", "<", 2.0)),
        Result("freshness p50, produced -> returned by a prediction replica's resolver", res50, "s",
               target=Target("value", "<", 1.0)),
        Result("freshness p99, produced -> written online (the actors' own figure: the floor)", floor99, "s"),
    ]  # fmt: skip
