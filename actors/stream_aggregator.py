"""Stream aggregation actors: one per group of Kafka partitions of a streaming feature group.

Each micro-batch: consume up to ``batch_size`` events from the assigned partitions, validate them (bad ones go
to the dead-letter topic with the reason), fold them into the bucketed windows, write the changed entities'
aggregates to the online store (``feature_ts`` = the entity's newest event time: idempotent), log the same
rows to the offline store, checkpoint the state with the offsets it includes, then commit those offsets.
A restarted actor restores its checkpoint and seeks to the offsets it records, so events after them are
read once and events before them never again; a crash between the writes and the checkpoint replays the
batch onto the older state, rewriting the same rows. ``StreamAggregatorWorker`` is the logic, testable
without Ray; ``StreamAggregatorActor`` wraps it.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import ray

from ma_ray.config import load_settings
from ma_ray.connections import kafka_settled
from ma_ray.palette import FeatureRepository
from ma_ray.palette.offline import OfflineStore
from ma_ray.palette.online import OnlineTable, now_us, open_online_store
from ma_ray.palette.pipelines import generate_pipelines
from ma_ray.palette.streaming import (
    AtomicFileStore,
    EventParser,
    HealthBoard,
    Rejected,
    StreamAggregator,
    StreamHealth,
    StreamMetrics,
    offset_key,
    open_health_board,
    shared_stream_metrics,
    stream_checkpoint_root,
)

FRESHNESS_SAMPLES = 10_000
LAG_EVERY_S = 5.0  # how often a running actor measures (and records) its consumer lag
STAT_NAMES = (
    "events",
    "dead_letters",
    "late_events",
    "rows_written",
    "checkpoints",
    "kafka_errors",
    "restored_entities",
)


@dataclass(frozen=True)
class StreamConfig:
    """Where one actor reads from and how it batches. ``name`` identifies its checkpoint: keep it stable."""

    topic: str
    partitions: tuple[int, ...]
    consumer_group: str
    name: str
    batch_size: int = 5000
    poll_timeout_s: float = 0.2
    checkpoint_every: int = 1
    dead_letter_topic: str | None = None  # default: "<topic>.dead-letter"
    max_future_s: float = 300.0
    log_offline: bool = True
    checkpoint_dir: str | None = None  # default: <state_dir>/stream_checkpoints/<catalog>/<group>
    crash_after_write_in_batch: int | None = None  # tests: die after batch N's writes, before its checkpoint

    @property
    def dead_letters(self) -> str:
        return self.dead_letter_topic or f"{self.topic}.dead-letter"


class StreamAggregatorWorker:
    def __init__(
        self,
        repo: FeatureRepository,
        group: str,
        config: StreamConfig,
        settings_overrides: dict[str, Any] | None = None,
        metrics: StreamMetrics | None = None,
        *,
        event_schema: pa.Schema,
    ) -> None:
        """``event_schema``: the raw source's event schema (the group's plan checks it has every column it uses)."""
        from confluent_kafka import Consumer, Producer

        from ma_ray.connections import kafka_consumer_config, kafka_producer_config

        self.settings = load_settings(**(settings_overrides or {}))
        self.config = config
        plan = generate_pipelines(repo).plan(group)
        self.bound = plan.bind(event_schema)
        self.parser = EventParser(self.bound, config.max_future_s)
        self.table = OnlineTable.of(repo, next(g for g in repo.groups if g.name == group))
        # The one write path: the primary, then Redis (and this process's L1) refreshed, so readers see the write.
        self.store = open_online_store(self.settings)
        self.store.update(self.table)
        directory = config.checkpoint_dir or stream_checkpoint_root(self.settings.state_dir)
        self.checkpoints = AtomicFileStore(f"{directory}/{plan.catalog}/{plan.group}")
        self.health: HealthBoard = open_health_board(self.settings)  # where readers on any node look
        self.group = (plan.catalog, plan.group)
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_NAMES, 0))
        self.freshness_us: deque[int] = deque(maxlen=FRESHNESS_SAMPLES)
        self.batches = 0
        self.metrics = metrics or shared_stream_metrics()
        self.tags = {"catalog": plan.catalog, "group": plan.group, "actor": config.name}
        self._lag_checked = 0.0
        self.consumer = Consumer(kafka_consumer_config(self.settings, config.consumer_group))
        self.producer = Producer(kafka_producer_config(self.settings))
        ensure_topic(self.settings, config.dead_letters)
        self.aggregator, self.offsets = self._resume()
        self._assign()

    # ---- start ----------------------------------------------------------------------------------------------
    def _resume(self) -> tuple[StreamAggregator, dict[str, int]]:
        data = self.checkpoints.load(self.config.name)
        if data is None:
            return StreamAggregator(self.bound), {}
        aggregator, offsets = StreamAggregator.restore(self.bound, data)
        self.stats["restored_entities"] = len(aggregator.entities)
        return aggregator, offsets

    def _assign(self) -> None:
        """Checkpointed offsets first; else the group's committed offsets; else the start of the partition."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        topic = self.config.topic
        committed = self._committed([TopicPartition(topic, p) for p in self.config.partitions])
        from_checkpoint = bool(self.offsets) or self.stats["restored_entities"] > 0
        assignment = []
        for tp in committed:
            key = offset_key(topic, tp.partition)
            if not from_checkpoint and tp.offset >= 0:
                self.offsets[key] = tp.offset
            assignment.append(TopicPartition(topic, tp.partition, self.offsets.get(key, OFFSET_BEGINNING)))
        self.consumer.assign(assignment)

    def _committed(self, partitions: list, timeout_s: float = 60.0) -> list:
        """The group's committed offsets; a broker still electing or loading the group's coordinator (just
        started, or restarted) answers with a retriable error for a few seconds: ask again until ``timeout_s``."""
        return kafka_settled(lambda: self.consumer.committed(partitions, timeout=30), timeout_s)

    # ---- the micro-batch ------------------------------------------------------------------------------------
    def step(self) -> int:
        """One micro-batch; returns the number of Kafka messages it consumed."""
        messages = self.consumer.consume(self.config.batch_size, self.config.poll_timeout_s)
        if not messages:
            return 0
        start_offsets = dict(self.offsets)
        events, oldest_produced_ms = self._read(messages)
        late_before = self.aggregator.late_events
        changed = self.aggregator.apply(events)
        rows = self.aggregator.rows(changed | self.aggregator.expire())
        self.stats["events"] += len(events)
        self.stats["late_events"] += self.aggregator.late_events - late_before
        if not rows:
            self.store.sync_caches()  # refreshes owed to a cache that was failing, once it answers again
        else:
            self.store.put(self.table, rows)
            self.stats["rows_written"] += len(rows)
            if self.config.log_offline:
                self._log_offline(rows, start_offsets)
        freshness_s = None
        if oldest_produced_ms is not None:
            self.freshness_us.append(now_us() - oldest_produced_ms * 1000)
            freshness_s = self.freshness_us[-1] / 1e6
        self.metrics.record_batch(self.tags, len(events), self.aggregator.late_events - late_before, freshness_s)
        self.batches += 1
        if self.config.crash_after_write_in_batch == self.batches:
            os._exit(1)  # a crash after the writes, before the checkpoint and the commit
        self.producer.flush(30)
        if self.batches % self.config.checkpoint_every == 0:
            self.checkpoint()
        return len(messages)

    def _read(self, messages: list) -> tuple[list[dict[str, Any]], int | None]:
        """The valid events of some messages (the rest dead-lettered), and the oldest produce time (ms)."""
        now = now_us()
        events, oldest_produced_ms = [], None
        for message in messages:
            if message.error() is not None:
                self.stats["kafka_errors"] += 1
                continue
            self.offsets[offset_key(message.topic(), message.partition())] = message.offset() + 1
            produced_ms = message.timestamp()[1]
            if produced_ms > 0 and (oldest_produced_ms is None or produced_ms < oldest_produced_ms):
                oldest_produced_ms = produced_ms
            parsed = self.parser.parse(message.value(), now)
            if isinstance(parsed, Rejected):
                self._dead_letter(message, parsed)
            else:
                events.append(parsed)
        return events, oldest_produced_ms

    def checkpoint(self) -> None:
        """Save the state with its offsets, then commit exactly those offsets (never ahead of a checkpoint)."""
        from confluent_kafka import TopicPartition

        if not self.offsets:
            return
        self.checkpoints.save(self.config.name, self.aggregator.checkpoint(self.offsets))
        commits = [TopicPartition(k.rsplit(":", 1)[0], int(k.rsplit(":", 1)[1]), o) for k, o in self.offsets.items()]
        self.consumer.commit(offsets=commits, asynchronous=False)
        self.stats["checkpoints"] += 1

    def _dead_letter(self, message: Any, rejected: Rejected) -> None:
        record = {
            "reason": rejected.reason,
            "detail": rejected.detail,
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "payload": (message.value() or b"").decode("utf-8", errors="replace"),
        }
        self.producer.produce(self.config.dead_letters, key=message.key(), value=json.dumps(record).encode())
        self.stats["dead_letters"] += 1
        self.stats[f"dead_letters.{rejected.reason}"] += 1
        self.metrics.record_dead_letter(self.tags, rejected.reason)

    def _log_offline(self, rows: list, start_offsets: dict[str, int]) -> None:
        """Parquet of what serving now sees, named by the offsets the batch starts at (a replay overwrites it)."""
        import pyarrow.parquet as pq

        plan = self.bound.plan
        offline = OfflineStore(self.settings.offline_uri)
        filesystem, directory = offline.fs, offline.stream_log_dir(plan.catalog, plan.group, self.config.name)
        filesystem.create_dir(directory, recursive=True)
        topic = self.config.topic
        start = "-".join(f"p{p}o{start_offsets.get(offset_key(topic, p), 0)}" for p in self.config.partitions)
        pq.write_table(self.aggregator.log_table(rows), f"{directory}/{start}.parquet", filesystem=filesystem)

    # ---- running and watching -------------------------------------------------------------------------------
    def lag(self) -> int:
        """Messages in the assigned partitions not yet read (high watermark - position), summed."""
        from confluent_kafka import TopicPartition

        total = 0
        for partition in self.config.partitions:
            tp = TopicPartition(self.config.topic, partition)
            low, high = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            total += max(0, high - self.offsets.get(offset_key(self.config.topic, partition), low))
        self.metrics.record_lag(self.tags, total)
        freshness_s = self.freshness_us[-1] / 1e6 if self.freshness_us else None
        self.health.publish(*self.group, StreamHealth(self.config.name, total, freshness_s, now_us()))
        self._lag_checked = time.monotonic()
        return total

    def run(
        self, max_batches: int | None = None, until_caught_up: bool = True, max_seconds: float | None = None
    ) -> dict:
        """Micro-batches until ``max_batches``, ``max_seconds``, or (by default) no lag is left."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        done = 0
        while max_batches is None or done < max_batches:
            consumed = self.step()
            done += consumed > 0
            if deadline is not None and time.monotonic() > deadline:
                break
            if consumed == 0 and until_caught_up and self.lag() == 0:
                break
            if time.monotonic() - self._lag_checked > LAG_EVERY_S:
                self.lag()
        if self.config.checkpoint_every > 1 and self.batches % self.config.checkpoint_every:
            self.checkpoint()
        return self.report()

    def report(self) -> dict:
        freshness = sorted(self.freshness_us)
        return {
            "name": self.config.name,
            "batches": self.batches,
            "entities": len(self.aggregator.entities),
            "state_accumulators": self.aggregator.state_size(),
            "offsets": dict(self.offsets),
            "freshness_us": freshness,
            "config": asdict(self.config),
            **self.stats,
        }

    def close(self) -> None:
        self.producer.flush(30)
        self.consumer.close()
        self.store.close()


def ensure_topic(settings: Any, topic: str, partitions: int = 1) -> None:
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    from ma_ray.connections import kafka_admin

    admin = kafka_admin(settings)  # held: the futures fail if the client is collected first
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        future[topic].result(timeout=30)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


@ray.remote(num_cpus=0.5, max_restarts=3)
class StreamAggregatorActor:
    """One aggregation actor; a restart (by Ray or by hand) resumes from its checkpoint and offsets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.worker = StreamAggregatorWorker(*args, **kwargs)

    def run(self, **kwargs: Any) -> dict:
        return self.worker.run(**kwargs)

    def step(self) -> int:
        return self.worker.step()

    def lag(self) -> int:
        return self.worker.lag()

    def report(self) -> dict:
        return self.worker.report()

    def close(self) -> None:
        self.worker.close()
