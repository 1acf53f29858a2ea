"""A base for test doubles of a slow or failing online store: writes and housekeeping go to an in-memory cache, so
a double only says how it reads."""

from __future__ import annotations

from collections.abc import Sequence

from ma_ray.palette.online import EntityRow, InProcessCache, OnlineStore, OnlineTable


class InMemoryStoreDouble(OnlineStore):
    """Reads are the subclass's ``get``; the rest goes to ``inner`` (kept an hour, so nothing expires mid-test)."""

    local = False  # a remote store to the resolver: read on its pool, under its deadline

    def __init__(self, inner: InProcessCache | None = None) -> None:
        self.inner = inner or InProcessCache(ttl_s=3600)

    def put(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        self.inner.put(table, rows)

    def update(self, table: OnlineTable) -> None: ...

    def prune(self, table: OnlineTable, keys: Sequence, before_ts: int) -> None: ...

    def teardown(self, table: OnlineTable) -> None:
        self.inner.teardown(table)

    def close(self) -> None: ...
