"""Bulk-loading an offline snapshot into the online store (the seed's Batch Loader)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ma_ray.palette.online import EntityRow, OnlineStore, OnlineTable

FEATURE_TS = "feature_timestamp"


@dataclass(frozen=True)
class LoadReport:
    rows: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


def snapshot_rows(snapshot: pa.Table, table: OnlineTable, join_key: str) -> list[EntityRow]:
    """The snapshot's rows as online rows: key, feature timestamp (epoch us), the group's stored features."""
    missing = [c for c in (join_key, FEATURE_TS, *table.features) if c not in snapshot.column_names]
    if missing:
        raise ValueError(f"snapshot of {table.catalog}.{table.group} lacks column(s) {', '.join(missing)}")
    keys = snapshot[join_key].to_pylist()
    stamps = pc.cast(snapshot[FEATURE_TS], pa.int64()).to_pylist()
    columns = {name: snapshot[name].to_pylist() for name in table.features}
    return [
        EntityRow(key, ts, {name: values[i] for name, values in columns.items()})
        for i, (key, ts) in enumerate(zip(keys, stamps, strict=True))
    ]


def load_snapshot(
    snapshot: pa.Table, table: OnlineTable, store: OnlineStore, join_key: str, batch_rows: int = 20_000
) -> LoadReport:
    """Write a snapshot to the store in batches (each backend writes a batch concurrently). Idempotent: a
    re-run after a failure rewrites the same (key, feature_timestamp) rows.

    Expiry follows snapshot versions, not the wall clock: once a batch of the new snapshot is written, rows of
    the same keys older than the new snapshot's timestamp minus the group's TTL are pruned. A failed or late
    load prunes nothing, so the last good values keep serving (their staleness is reported)."""
    started = time.perf_counter()
    store.update(table)
    for offset in range(0, snapshot.num_rows, batch_rows):
        write_version(store, table, snapshot_rows(snapshot.slice(offset, batch_rows), table, join_key))
    return LoadReport(snapshot.num_rows, time.perf_counter() - started)


def write_version(store: OnlineStore, table: OnlineTable, rows: list[EntityRow]) -> None:
    """Write rows of one snapshot version, then prune the same keys' versions older than its TTL window."""
    store.put(table, rows)
    newest = max((row.feature_ts for row in rows), default=0)
    store.prune(table, [row.key for row in rows], newest - table.ttl_s * 1_000_000)
