"""The bulk loader as a Ray Data `Datasink`: snapshot blocks -> the online store, written from the workers.

Each write task opens the store the settings name (``open_online_store``: Cassandra + Redis in production,
SQLite embedded) in its own process and writes its blocks in batches; Cassandra's ``put`` sends each batch as
concurrent unlogged batches grouped by replica, and several write tasks run at once. Rows are keyed by
(entity key, feature timestamp), so a retried task or a re-run rewrites the same rows: the load is idempotent,
and until it finishes readers keep getting the previous snapshot's rows for the keys it has not reached.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from ray.data import Datasink
from ray.data.block import Block, BlockAccessor
from ray.data.datasource import WriteResult

from ma_ray.config import Settings, load_settings
from ma_ray.palette.materialize import snapshot_rows, write_version
from ma_ray.palette.online import EntityRow, OnlineStore, OnlineTable, open_online_store

DEFAULT_BATCH_ROWS = 5_000


class OnlineStoreDatasink(Datasink[int]):
    """Writes snapshot rows (join key, ``feature_timestamp``, the group's stored features) to the online store."""

    def __init__(self, settings: Settings, table: OnlineTable, join_key: str, batch_rows: int = DEFAULT_BATCH_ROWS):
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        self._settings: dict[str, Any] = settings.model_dump()
        self.table = table
        self.join_key = join_key
        self.batch_rows = batch_rows
        self.rows_written: int | None = None

    def open_store(self) -> OnlineStore:
        """The store, opened in the calling process (a Ray worker during ``write``)."""
        return open_online_store(load_settings(**self._settings))

    def on_write_start(self, schema: pa.Schema | None = None) -> None:
        store = self.open_store()
        try:
            store.update(self.table)  # create or evolve the table once, before the workers write
        finally:
            store.close()

    def write(self, blocks: Iterable[Block], ctx: Any) -> int:
        store = self.open_store()
        written = 0
        try:
            for block in blocks:
                table = BlockAccessor.for_block(block).to_arrow()
                for offset in range(0, table.num_rows, self.batch_rows):
                    rows = snapshot_rows(table.slice(offset, self.batch_rows), self.table, self.join_key)
                    self.put(store, rows)
                    written += len(rows)
        finally:
            store.close()
        return written

    def put(self, store: OnlineStore, rows: list[EntityRow]) -> None:
        """One batch (written, then older versions pruned); a subclass may wrap it (fault injection in tests)."""
        write_version(store, self.table, rows)

    def on_write_complete(self, write_result: WriteResult[int]) -> None:
        self.rows_written = sum(write_result.write_returns)

    def get_name(self) -> str:
        return "OnlineStore"
