"""Cache tiers in front of the primary store: an in-process L1 and Redis as L2.

Both hold the newest row per entity (all stored features of the group) and speak the online store protocol.
A cache answers a read only with a row written at or before the read timestamp that carries every requested
feature; otherwise it reports a miss and the next tier answers.

Two kinds of write, both ordered by feature timestamp so an older row never replaces a newer one:
- ``put`` is the read-through fill: the row read from the tier below, set unless the entry is newer.
- ``refresh`` is the writers' step after the primary took their rows (`TieredOnlineStore.put`): a cached entry
  older than a written row becomes that row (it is now the primary's newest: every write since the entry was
  cached went through here); a key with no entry gets a *marker* carrying only the written timestamp, a miss for
  readers that also refuses any fill older than it. So a fill that read the primary before the write (and would
  plant the old value for the cache's whole TTL) loses, and a backfill of old rows never poses as the newest.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import msgpack

from ma_ray.palette.online.base import EntityKey, EntityRow, FeatureValues, OnlineTable, from_stored, to_stored
from ma_ray.palette.types import FeatureType

# KEYS = cache keys; ARGV = ts_1, payload_1, ..., ts_n, payload_n, ttl_s. Values are "<feature_ts>|<msgpack>".
_SET_IF_NEWER = """
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  local ts = ARGV[2 * i - 1]
  local current = redis.call('GET', key)
  local newer = true
  if current then
    local bar = string.find(current, '|', 1, true)
    if bar and tonumber(string.sub(current, 1, bar - 1)) > tonumber(ts) then newer = false end
  end
  if newer then redis.call('SET', key, ts .. '|' .. ARGV[2 * i], 'EX', ttl) end
end
return 0
"""
# The writers' refresh, same arguments: an entry as new or newer stays; an older one becomes the written row; a
# missing one becomes the marker "<feature_ts>|" (no payload), which reads as a miss.
_REFRESH = """
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  local ts = ARGV[2 * i - 1]
  local current = redis.call('GET', key)
  if current then
    local bar = string.find(current, '|', 1, true)
    if not bar or tonumber(string.sub(current, 1, bar - 1)) <= tonumber(ts) then
      redis.call('SET', key, ts .. '|' .. ARGV[2 * i], 'EX', ttl)
    end
  else
    redis.call('SET', key, ts .. '|', 'EX', ttl)
  end
end
return 0
"""
_MARKER = None  # an L1 entry's row when it only records a written timestamp (see ``refresh``)


def _project(
    table: OnlineTable, key: EntityKey, feature_ts: int, stored: dict[str, Any], features: Sequence[str], tier: str
) -> FeatureValues | None:
    try:
        values = {name: stored[name] for name in features}
    except KeyError:
        return None  # cached before the group gained this feature: let the primary answer
    for name in features:
        if table.features[name] is FeatureType.TIMESTAMP:
            values[name] = from_stored(FeatureType.TIMESTAMP, values[name])
    return FeatureValues(key, feature_ts, values, tier)


def _stored_row(table: OnlineTable, row: EntityRow) -> dict[str, Any]:
    """Every stored feature of the row's version: one a writer left out is null in the primary too."""
    return {name: to_stored(kind, row.values.get(name)) for name, kind in table.features.items()}


def _miss(key: EntityKey) -> FeatureValues:
    return FeatureValues(key, None, {}, "")


class InProcessCache:
    """L1: a bounded LRU dict with a short TTL (the seed's 100 ms, 10,000 entries), safe across threads."""

    tier = "l1"

    def __init__(self, ttl_s: float = 0.1, max_entries: int = 10_000) -> None:
        if ttl_s <= 0 or max_entries < 1:
            raise ValueError("L1 cache needs ttl_s > 0 and max_entries >= 1")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._rows: OrderedDict[tuple[str, EntityKey], tuple[float, int, dict[str, Any] | None]] = OrderedDict()
        self._lock = threading.Lock()

    def update(self, table: OnlineTable) -> None:
        self.teardown(table)

    def put(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        """The read-through fill: each row unless its entry is newer."""
        self._write(table, rows, refresh=False)

    def refresh(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        """After the primary took ``rows``: older entries become the rows, missing ones a marker (module doc)."""
        self._write(table, rows, refresh=True)

    def _write(self, table: OnlineTable, rows: Sequence[EntityRow], refresh: bool) -> None:
        expires = time.monotonic() + self.ttl_s
        with self._lock:
            for row in rows:
                slot = (table.name, row.key)
                current = self._rows.get(slot)
                if current is not None and current[1] > row.feature_ts:
                    continue
                stored: dict[str, Any] | None = _MARKER
                if current is not None or not refresh:
                    stored = _stored_row(table, row)
                self._rows[slot] = (expires, row.feature_ts, stored)
                self._rows.move_to_end(slot)
            while len(self._rows) > self.max_entries:
                self._rows.popitem(last=False)

    def get(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues]:
        now = time.monotonic()
        answers = []
        with self._lock:
            for key in keys:
                entry = self._rows.get((table.name, key))
                answer = None
                if entry is not None and entry[0] > now and entry[1] <= read_ts and entry[2] is not _MARKER:
                    self._rows.move_to_end((table.name, key))
                    answer = _project(table, key, entry[1], entry[2], features, self.tier)
                answers.append(answer or _miss(key))
        return answers

    def invalidate(self, table: OnlineTable, keys: Sequence[EntityKey]) -> None:
        with self._lock:
            for key in keys:
                self._rows.pop((table.name, key), None)

    def prune(self, table: OnlineTable, keys: Sequence[EntityKey], before_ts: int) -> None:
        """Nothing to do: a cache holds only the newest row per key."""

    def __len__(self) -> int:
        return len(self._rows)

    def teardown(self, table: OnlineTable) -> None:
        with self._lock:
            for slot in [s for s in self._rows if s[0] == table.name]:
                del self._rows[slot]

    def close(self) -> None:
        with self._lock:
            self._rows.clear()


class RedisCache:
    """L2: compact msgpack rows in Redis with a TTL (the seed's 300 s), read with one pipelined MGET."""

    tier = "redis"

    def __init__(self, client: Any, ttl_s: int = 300, prefix: str = "mr") -> None:
        if ttl_s < 1:
            raise ValueError("Redis cache ttl_s must be at least 1 second")
        self.client = client
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._set_if_newer = client.register_script(_SET_IF_NEWER)
        self._refresh = client.register_script(_REFRESH)

    def _key(self, table: OnlineTable, key: EntityKey) -> str:
        return f"{self.prefix}:{table.name}:{key}"

    def update(self, table: OnlineTable) -> None:
        """Nothing to create; rows cached under an older schema are treated as misses when a feature is new."""

    def put(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        """The read-through fill: each row unless its entry is newer."""
        self._write(self._set_if_newer, table, rows)

    def refresh(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        """After the primary took ``rows``: older entries become the rows, missing ones a marker (module doc)."""
        self._write(self._refresh, table, rows)

    def _write(self, script: Any, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        if not rows:
            return
        keys, args = [], []
        for row in rows:
            stored = _stored_row(table, row)
            keys.append(self._key(table, row.key))
            args += [str(row.feature_ts), msgpack.packb(stored)]
        script(keys=keys, args=[*args, self.ttl_s])

    def get(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues]:
        if not keys:
            return []
        prefix = f"{self.prefix}:{table.name}:"
        raw = self.client.mget([prefix + str(key) for key in keys])
        needs_conversion = any(table.features[name] is FeatureType.TIMESTAMP for name in features)
        answers = []
        unpack, tier = msgpack.unpackb, self.tier
        for key, value in zip(keys, raw, strict=True):
            if value is not None:
                bar = value.index(b"|")
                feature_ts = int(value[:bar])
                if feature_ts <= read_ts and bar + 1 < len(value):  # a marker (nothing after "|") is a miss
                    stored = unpack(value[bar + 1 :])
                    try:  # the hot path: every requested feature cached, no timestamps to convert
                        if not needs_conversion:
                            answers.append(FeatureValues(key, feature_ts, {n: stored[n] for n in features}, tier))
                            continue
                    except KeyError:
                        answers.append(_miss(key))
                        continue
                    answers.append(_project(table, key, feature_ts, stored, features, tier) or _miss(key))
                    continue
            answers.append(_miss(key))
        return answers

    def invalidate(self, table: OnlineTable, keys: Sequence[EntityKey]) -> None:
        if keys:
            self.client.delete(*[self._key(table, key) for key in keys])

    def prune(self, table: OnlineTable, keys: Sequence[EntityKey], before_ts: int) -> None:
        """Nothing to do: a cache holds only the newest row per key."""

    def teardown(self, table: OnlineTable) -> None:
        for batch in _batched(self.client.scan_iter(match=f"{self.prefix}:{table.name}:*", count=1000), 1000):
            self.client.delete(*batch)

    def close(self) -> None:
        self.client.close()


def _batched(items: Any, size: int) -> Any:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
