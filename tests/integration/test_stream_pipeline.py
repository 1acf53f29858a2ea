"""The streaming path on real Kafka: generated trip events -> aggregation actors -> online store + offline log.

Final aggregates equal a brute-force window computation over the same events, for a clean run with two
actors and for a run whose actors are killed between batches (ray.kill) and crash after a batch's writes
but before its checkpoint and commit: nothing lost, nothing counted twice. Malformed events reach the
dead-letter topic with their reason and never stop the stream.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import ray
from confluent_kafka import Consumer

from actors.stream_aggregator import StreamAggregatorActor, StreamConfig, ensure_topic
from apps.stream_pipeline import encode_events, generated_events, main, replay, start_actors
from ma_ray.config import Settings, load_settings
from ma_ray.connections import kafka_admin, kafka_consumer_config
from ma_ray.datagen.rideshare import TRIP_EVENT_SCHEMA, RideshareConfig
from ma_ray.palette.catalog import FeatureRepository
from ma_ray.palette.online import OnlineTable
from ma_ray.palette.repository import load_repository
from ma_ray.palette.streaming.health import open_health_board

GROUP = "driver_realtime"
US = 1_000_000
# feature -> (event type counted, window, bucket) as the sample repository declares them
FEATURES = {
    "trip_count_1h": ("requested", 3600 * US, 60 * US),
    "completed_trips_1d": ("completed", 86_400 * US, 3600 * US),
}
BAD = [
    b"{not json",
    json.dumps({"event_type": "requested", "event_ts": 1}).encode(),  # missing key
    json.dumps({"driver_id": "drv_x", "event_type": "requested", "event_ts": "soon"}).encode(),  # wrong type
    json.dumps({"driver_id": "drv_x", "event_type": "requested", "event_ts": 4_000_000_000_000_000}).encode(),
]
BAD_REASONS = {"bad_json", "missing_key", "wrong_type", "future_event_time"}


@pytest.fixture(scope="module")
def repo() -> FeatureRepository:
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        return load_repository(path)


@pytest.fixture(scope="module")
def stream(services: Settings) -> tuple[str, pa.Table]:
    """A two-partition topic holding ~3,000 generated trip events of one day and a few malformed ones."""
    topic = f"test-trips-{uuid.uuid4().hex[:8]}"
    ensure_topic(services, topic, partitions=2)
    events = next(generated_events(RideshareConfig(trips=10_000, chunk_trips=1_000, days=1)))
    records = encode_events(events)
    middle = len(records) // 2
    bad = [(f"drv_bad_{i}".encode(), value) for i, value in enumerate(BAD)]
    assert replay(services, topic, [*records[:middle], *bad, *records[middle:]]) == len(records) + len(BAD)
    yield topic, events
    kafka_admin(services).delete_topics([topic, f"{topic}.dead-letter"])


def expected(events: pa.Table, as_of: dict[str, int] | None = None) -> dict[str, tuple[int, dict[str, int]]]:
    """Brute force: per driver, its row time T (its newest event, or ``as_of[driver]`` where its windows
    decayed since) and each count over [lo(T), T]."""
    rows = events.select(["driver_id", "event_type", "event_ts"]).to_pylist()
    by_driver: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for row in rows:
        by_driver[row["driver_id"]].append(
            (row["event_type"], int(pa.scalar(row["event_ts"]).cast(pa.int64()).as_py()))
        )
    found = {}
    for driver, seen in by_driver.items():
        latest = max(ts for _, ts in seen)
        if as_of is not None:
            assert as_of[driver] >= latest, driver  # rows never go back before a driver's newest event
            latest = as_of[driver]
        counts = {}
        for feature, (kind, window, bucket) in FEATURES.items():
            low = (latest // bucket) * bucket + bucket - window
            counts[feature] = sum(1 for k, ts in seen if k == kind and low <= ts <= latest)
        found[driver] = (latest, counts)
    return found


def online_values(
    repo: FeatureRepository, overrides: dict[str, str], drivers: list[str], drop: bool = False
) -> dict[str, tuple[int, dict]]:
    table = OnlineTable.of(repo, next(g for g in repo.groups if g.name == GROUP))
    settings = load_settings(**overrides)
    store = settings.online_store.build("store", settings)
    try:
        answers = store.get(table, drivers, list(FEATURES), read_ts=2**62)
        if drop:
            store.drop_keyspace()
    finally:
        store.close()
    return {a.key: (a.feature_ts, a.values) for a in answers}


def _overrides(services: Settings, state_dir: Path, store: str = "sqlite") -> dict[str, str]:
    found = {"state_dir": str(state_dir), "kafka_bootstrap": services.kafka.bootstrap, "online_store": store}
    if store == "cassandra":
        found["cassandra_keyspace"] = f"test_stream_{uuid.uuid4().hex[:8]}"
    return found


@pytest.mark.parametrize("store", ["sqlite", "cassandra"])
def test_two_actors_compute_the_brute_force_aggregates(
    services: Settings, ray_cluster: str, repo: FeatureRepository, stream, tmp_path: Path, store: str
) -> None:
    topic, events = stream
    overrides = _overrides(services, tmp_path, store)
    handles = start_actors(repo, GROUP, topic, 2, 2, overrides, consumer_group=f"g-{uuid.uuid4().hex[:8]}")
    try:
        reports = ray.get([h.run.remote() for h in handles], timeout=300)
    finally:
        for handle in handles:
            ray.kill(handle)
    assert sum(r["events"] for r in reports) == events.num_rows
    assert sum(r["dead_letters"] for r in reports) == len(BAD)
    drivers = sorted(expected(events))
    online = online_values(repo, overrides, [*drivers, "drv_x"], drop=store == "cassandra")
    assert online.pop("drv_x") == (None, {})  # a malformed event is dead-lettered whole, never half-applied
    truth = expected(events, {d: ts for d, (ts, _) in online.items()})
    assert online == truth
    # the offline log holds what serving saw: its newest row per driver is the online row
    log = pq.read_table(tmp_path / "offline" / "stream_log")
    newest = log.sort_by([("feature_timestamp", "descending")]).to_pylist()
    logged = {}
    for row in newest:
        logged.setdefault(row["driver_id"], {f: row[f] for f in FEATURES})
    assert logged == {d: v for d, (_, v) in truth.items()}
    health = open_health_board(load_settings(**overrides)).read(repo.catalog, GROUP)  # Redis in production
    assert sorted(h.lag_messages for h in health) == [0, 0]  # both actors caught up and said so
    reasons = _dead_letter_reasons(services, f"{topic}.dead-letter")
    assert reasons == BAD_REASONS


def test_killed_and_crashed_actors_resume_without_loss_or_double_counting(
    services: Settings, ray_cluster: str, repo: FeatureRepository, stream, tmp_path: Path
) -> None:
    topic, events = stream
    overrides = _overrides(services, tmp_path)
    config = StreamConfig(topic, (0, 1), f"g-{uuid.uuid4().hex[:8]}", "crashy", batch_size=300)

    def actor(cfg: StreamConfig):
        return StreamAggregatorActor.options(max_restarts=0).remote(
            repo, GROUP, cfg, overrides, event_schema=TRIP_EVENT_SCHEMA
        )

    first = actor(config)
    assert ray.get(first.run.remote(max_batches=2), timeout=120)["batches"] == 2
    ray.kill(first)  # killed between batches
    second = actor(StreamConfig(**{**config.__dict__, "crash_after_write_in_batch": 2}))
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(second.run.remote(), timeout=120)  # dies after batch 2's writes, before its checkpoint
    third = actor(config)
    try:
        report = ray.get(third.run.remote(), timeout=300)
    finally:
        ray.kill(third)
    assert report["restored_entities"] > 0
    online = online_values(repo, overrides, sorted(expected(events)))
    assert online == expected(events, {d: ts for d, (ts, _) in online.items()})


def test_the_command_line_replays_and_runs(
    services: Settings, ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("MA_RAY_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("MA_RAY_KAFKA_BOOTSTRAP", services.kafka.bootstrap)
    topic = f"test-cli-{uuid.uuid4().hex[:8]}"
    try:
        assert main(["replay", "--topic", topic, "--partitions", "2", "--trips", "10000", "--days", "1"]) == 0
        produced = json.loads(capsys.readouterr().out)["events"]
        with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
            args = ["run", "--repository", str(path), "--topic", topic, "--actors", "2", "--no-log"]
            assert main(args) == 0
        reports = json.loads(capsys.readouterr().out)
    finally:
        kafka_admin(services).delete_topics([topic, f"{topic}.dead-letter"])
    assert sum(r["events"] for r in reports) == produced > 30_000
    assert (tmp_path / "online.sqlite").exists()


def _dead_letter_reasons(services: Settings, topic: str) -> set[str]:
    consumer = Consumer(kafka_consumer_config(services, f"dlq-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    reasons: set[str] = set()
    try:
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                reasons.add(json.loads(message.value())["reason"])
            if reasons >= BAD_REASONS:
                break
    finally:
        consumer.close()
    return reasons


def test_counts_ignore_nothing_of_the_generated_day(stream) -> None:
    _, events = stream
    assert pc.count_distinct(events["driver_id"]).as_py() > 50  # the comparison above covers many drivers
