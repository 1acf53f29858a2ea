"""The production online store on Cassandra, with the seed's table shape and tuning.

One table per feature group: partition key = entity key, clustering ``feature_timestamp DESC`` so the newest
row at or before a read timestamp is a ``LIMIT 1`` slice; LeveledCompactionStrategy, LZ4, no read repair.
Timestamps are bigint epoch microseconds (Cassandra's ``timestamp`` keeps milliseconds only, which would
break idempotency on (key, feature_ts)). Reads are prepared, idempotent, token-aware, concurrent.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from cassandra.cluster import ResponseFuture
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from ma_ray.config import Settings
from ma_ray.connections import ONLINE_READ_PROFILE, open_keyspace
from ma_ray.palette.online.base import (
    EntityKey,
    EntityRow,
    FeatureValues,
    OnlineStore,
    OnlineTable,
    from_stored,
    to_stored,
)
from ma_ray.palette.types import FeatureType
from ma_ray.row_dicts import RowToDict, row_to_dict

_CQL_TYPES = {
    FeatureType.INT: "bigint",
    FeatureType.FLOAT: "double",
    FeatureType.BOOL: "boolean",
    FeatureType.STRING: "text",
    FeatureType.TIMESTAMP: "bigint",
}
# Rows outlive the group's TTL by this factor, so a failed or late batch load never lets the last good
# values expire underneath serving (the reader reports their staleness instead).
TTL_SAFETY_FACTOR = 3
WRITE_CONCURRENCY = 32
# Rows per unlogged batch: one request instead of many amortizes the driver's per-request cost (the bulk
# loader's bottleneck); kept small so a batch stays under Cassandra's batch size warning.
ROWS_PER_BATCH = 25
# Keys per multi-partition read: a 100-key request becomes 4 reads that Cassandra serves in parallel.
KEYS_PER_READ = 25


class CassandraOnlineStore(OnlineStore):
    layer = "cassandra"
    local = False

    @classmethod
    def from_settings(cls, settings: Settings) -> CassandraOnlineStore:
        return cls(settings)

    def __init__(self, settings: Settings, keyspace: str | None = None) -> None:
        self.keyspace = keyspace or f"{settings.cassandra.keyspace}_online"
        self._cluster, self._session = open_keyspace(settings, self.keyspace)
        self._reads: dict[tuple[str, tuple[str, ...]], PreparedStatement] = {}
        self._multi_reads: dict[tuple[str, tuple[str, ...]], PreparedStatement] = {}
        self._prunes: dict[str, PreparedStatement] = {}
        self._writes: dict[tuple[str, tuple[str, ...]], PreparedStatement] = {}

    def update(self, table: OnlineTable) -> None:
        key_type = "text" if table.key_type is FeatureType.STRING else "bigint"
        columns = "".join(f"{name} {_CQL_TYPES[kind]}, " for name, kind in table.features.items())
        self._session.execute(
            f"CREATE TABLE IF NOT EXISTS {self.keyspace}.{table.name} (entity_key {key_type}, "
            f"feature_timestamp bigint, {columns}updated_at timestamp, "
            "PRIMARY KEY ((entity_key), feature_timestamp)) WITH CLUSTERING ORDER BY (feature_timestamp DESC) "
            f"AND default_time_to_live = {table.ttl_s * TTL_SAFETY_FACTOR} "
            "AND compaction = {'class': 'LeveledCompactionStrategy'} "
            "AND compression = {'class': 'LZ4Compressor'} AND read_repair = 'NONE'"
        )
        existing = {
            row.column_name
            for row in self._session.execute(
                "SELECT column_name FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
                (self.keyspace, table.name),
            )
        }
        for name, kind in table.features.items():
            if name not in existing:
                self._session.execute(f"ALTER TABLE {self.keyspace}.{table.name} ADD {name} {_CQL_TYPES[kind]}")
        self._forget(table)

    def _forget(self, table: OnlineTable) -> None:
        for cache in (self._reads, self._multi_reads, self._writes):
            for cached in [k for k in cache if k[0] == table.name]:
                del cache[cached]
        self._prunes.pop(table.name, None)

    def _write_statement(self, table: OnlineTable) -> PreparedStatement:
        names = tuple(table.features)
        statement = self._writes.get((table.name, names))
        if statement is None:
            columns = ", ".join(["entity_key", "feature_timestamp", *names, "updated_at"])
            marks = ", ".join(["?"] * (len(names) + 2) + ["toTimestamp(now())"])
            statement = self._session.prepare(f"INSERT INTO {self.keyspace}.{table.name} ({columns}) VALUES ({marks})")
            statement.is_idempotent = True
            self._writes[(table.name, names)] = statement
        return statement

    def _read_statement(self, table: OnlineTable, features: Sequence[str]) -> PreparedStatement:
        names = tuple(features)
        statement = self._reads.get((table.name, names))
        if statement is None:
            columns = ", ".join(["entity_key", "feature_timestamp", *names])
            statement = self._session.prepare(
                f"SELECT {columns} FROM {self.keyspace}.{table.name} "
                "WHERE entity_key = ? AND feature_timestamp <= ? LIMIT 1"
            )
            statement.is_idempotent = True
            self._reads[(table.name, names)] = statement
        return statement

    def _multi_read_statement(self, table: OnlineTable, features: Sequence[str]) -> PreparedStatement:
        names = tuple(features)
        statement = self._multi_reads.get((table.name, names))
        if statement is None:
            columns = ", ".join(["entity_key", "feature_timestamp", *names])
            statement = self._session.prepare(
                f"SELECT {columns} FROM {self.keyspace}.{table.name} "
                "WHERE entity_key IN ? AND feature_timestamp <= ? PER PARTITION LIMIT 1"
            )
            statement.is_idempotent = True
            self._multi_reads[(table.name, names)] = statement
        return statement

    def _by_replica(self, table: OnlineTable, keys: Sequence[EntityKey]) -> list[list[EntityKey]]:
        """Keys grouped by the node that owns them, so a multi-key request stays on one replica."""
        groups: dict[object, list[EntityKey]] = defaultdict(list)
        metadata = self._cluster.metadata
        for key in keys:
            routing = key.encode() if isinstance(key, str) else struct.pack(">q", key)
            replicas = metadata.get_replicas(self.keyspace, routing)
            groups[replicas[0].endpoint if replicas else None].append(key)
        return list(groups.values())

    def put(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        """Concurrent unlogged batches of rows that share a replica; idempotent, so retries are safe."""
        statement = self._write_statement(table)
        names = list(table.features)
        by_key: dict[EntityKey, list[EntityRow]] = {row.key: [] for row in rows}
        for row in rows:
            by_key[row.key].append(row)
        batches = []
        for keys in self._by_replica(table, list(by_key)):
            replica_rows = [row for key in keys for row in by_key[key]]
            for start in range(0, len(replica_rows), ROWS_PER_BATCH):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for row in replica_rows[start : start + ROWS_PER_BATCH]:
                    batch.add(
                        statement,
                        (row.key, row.feature_ts, *(to_stored(table.features[n], row.values.get(n)) for n in names)),
                    )
                batches.append((batch, ()))
        execute_concurrent(self._session, batches, concurrency=WRITE_CONCURRENCY, raise_on_first_error=True)

    def get(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues]:
        """One prepared single-partition read for one key; for many, one ``IN`` read per replica and 25 keys."""
        table.check_features(features)
        responses = self._send(table, keys, features, read_ts)
        return self._answers(table, keys, features, [response.result() for response in responses])

    async def get_async(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues]:
        """`get` on an event loop with no thread between: the driver's IO thread hands each answer to the loop."""
        table.check_features(features)
        loop = asyncio.get_running_loop()
        responses = self._send(table, keys, features, read_ts)
        pages = await asyncio.gather(*(_awaited(loop, response) for response in responses))
        return self._answers(table, keys, features, pages)

    def _send(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[ResponseFuture]:
        """The reads, sent: one single-partition read for one key; for many, one ``IN`` read per replica and
        ``KEYS_PER_READ`` keys. Every read's rows are (entity_key, feature_timestamp, *features)."""
        reads: list[tuple[PreparedStatement, tuple[Any, int]]]
        if len(keys) == 1:
            reads = [(self._read_statement(table, features), (keys[0], read_ts))]
        else:
            statement = self._multi_read_statement(table, features)
            reads = [
                (statement, (group[start : start + KEYS_PER_READ], read_ts))
                for group in self._by_replica(table, list(dict.fromkeys(keys)))
                for start in range(0, len(group), KEYS_PER_READ)
            ]
        return [self._session.execute_async(*read, execution_profile=ONLINE_READ_PROFILE) for read in reads]

    def _answers(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], pages: Sequence[Sequence[Any]]
    ) -> list[FeatureValues]:
        """One answer per key from the reads' rows, each (entity_key, feature_timestamp, *features)."""
        rows = {row[0]: row for page in pages for row in page}
        values_of = row_to_dict(tuple(features), 2)
        return [self._answer(table, key, features, values_of, rows.get(key)) for key in keys]

    def _answer(
        self,
        table: OnlineTable,
        key: EntityKey,
        features: Sequence[str],
        values_of: RowToDict,
        row: Sequence[Any] | None,
    ) -> FeatureValues:
        """``row`` is (entity_key, feature_timestamp, *features); only timestamp features are converted."""
        if row is None:
            return FeatureValues(key, None, {}, self.layer)
        values = values_of(row)
        for name in table.timestamp_features.intersection(features) if table.timestamp_features else ():
            values[name] = from_stored(FeatureType.TIMESTAMP, values[name])
        return FeatureValues(key, row[1], values, self.layer)

    def prune(self, table: OnlineTable, keys: Sequence[EntityKey], before_ts: int) -> None:
        """One range tombstone per key (cheap with leveled compaction), written concurrently."""
        statement = self._prunes.get(table.name)
        if statement is None:
            statement = self._session.prepare(
                f"DELETE FROM {self.keyspace}.{table.name} WHERE entity_key = ? AND feature_timestamp < ?"
            )
            statement.is_idempotent = True
            self._prunes[table.name] = statement
        execute_concurrent(
            self._session,
            [(statement, (key, before_ts)) for key in keys],
            concurrency=WRITE_CONCURRENCY,
            raise_on_first_error=True,
        )

    def teardown(self, table: OnlineTable) -> None:
        self._session.execute(f"DROP TABLE IF EXISTS {self.keyspace}.{table.name}")
        self._forget(table)

    def drop_keyspace(self) -> None:
        """Delete every table of this store (tests)."""
        self._session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}")

    def close(self) -> None:
        self._cluster.shutdown()


def _awaited(loop: asyncio.AbstractEventLoop, response: ResponseFuture) -> asyncio.Future[list[Any]]:
    """The driver's response as an asyncio future of its rows (one page: reads here are LIMIT 1 per key, 25 keys
    at most), settled on ``loop`` from the driver's IO thread."""
    future: asyncio.Future[list[Any]] = loop.create_future()

    def settle(rows: list[Any] | None, error: BaseException | None) -> None:
        if future.done():  # the reader gave up at its deadline
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(rows or [])

    def hand_over(rows: list[Any] | None, error: BaseException | None = None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed while the read was out: nobody waits for it
            loop.call_soon_threadsafe(settle, rows, error)

    response.add_callbacks(hand_over, lambda error: hand_over(None, error))
    return future
