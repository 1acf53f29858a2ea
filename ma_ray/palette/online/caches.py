"""Cache layers in front of the primary store: an in-process L1 and Redis as L2.

Both hold the newest row per entity (all stored features of the group) and speak the online store protocol.
A cache answers a read only with a row written at or before the read timestamp that carries every requested
feature; otherwise it reports a miss and the next layer answers.

Two kinds of write, both ordered by feature timestamp so an older row never replaces a newer one:
- ``put`` is the read-through fill: the row read from the layer below, set unless the entry is newer.
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
from collections.abc import Callable, Sequence
from typing import Any, cast

import msgpack

from ma_ray.config import Settings
from ma_ray.connections import AsyncRedisReader, RedisReader
from ma_ray.palette.online.base import (
    CacheLayer,
    CacheRead,
    EntityKey,
    EntityRow,
    FeatureValues,
    OnlineTable,
    from_stored,
    to_stored,
)
from ma_ray.palette.types import FeatureType

# A Redis entry is one msgpack array, [feature_ts, row] (row nil in a marker), with feature_ts always packed as an
# int64 (0x92 0xd3 + 8 bytes big-endian): a read decodes all its entries in one unpack, and the scripts below read
# the timestamp at a fixed offset. An entry of any other shape (an older release's) counts as older than anything.
# KEYS = cache keys; ARGV = ts_1, entry_1, ..., ts_n, entry_n, ttl_s.
_TS_OF = """
local function ts_of(entry)
  if #entry >= 10 and string.sub(entry, 1, 2) == '\\146\\211' then return struct.unpack('>i8', entry, 3) end
  return nil
end
"""
_SET_IF_NEWER = (
    _TS_OF
    + """
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  local held = current and ts_of(current)
  if not held or held <= tonumber(ARGV[2 * i - 1]) then redis.call('SET', key, ARGV[2 * i], 'EX', ttl) end
end
return 0
"""
)
# The writers' refresh, same arguments: an entry as new or newer stays; an older one becomes the written row; a
# missing one becomes the marker [feature_ts, nil] (the entry's header and a msgpack nil), which reads as a miss.
_REFRESH = (
    _TS_OF
    + """
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current then
    local held = ts_of(current)
    if not held or held <= tonumber(ARGV[2 * i - 1]) then redis.call('SET', key, ARGV[2 * i], 'EX', ttl) end
  else
    redis.call('SET', key, string.sub(ARGV[2 * i], 1, 10) .. '\\192', 'EX', ttl)
  end
end
return 0
"""
)
_ENTRY_HEADER = b"\x92\xd3"  # a msgpack array of 2, then an int64
_MARKER = None  # an L1 entry's row when it only records a written timestamp (see ``refresh``)


def _project(
    table: OnlineTable, key: EntityKey, feature_ts: int, stored: dict[str, Any], features: Sequence[str], layer: str
) -> FeatureValues | None:
    try:
        values = {name: stored[name] for name in features}
    except KeyError:
        return None  # cached before the group gained this feature: let the primary answer
    if table.timestamp_features:
        for name in table.timestamp_features.intersection(features):
            values[name] = from_stored(FeatureType.TIMESTAMP, values[name])
    return FeatureValues(key, feature_ts, values, layer)


def _stored_row(table: OnlineTable, row: EntityRow | FeatureValues) -> dict[str, Any]:
    """Every stored feature of the row's version: one a writer left out is null in the primary too."""
    stored = {name: row.values.get(name) for name in table.features}
    for name in table.timestamp_features:
        stored[name] = to_stored(FeatureType.TIMESTAMP, stored[name])
    return stored


Entry = tuple[float, int, dict[str, Any] | None]  # (expires at, feature_ts, the stored row or _MARKER)


class InProcessCache(CacheLayer):
    """L1: bounded LRU dicts with a short TTL (the seed's 100 ms, 10,000 entries in all), safe across threads.

    One LRU per table, keyed by the entity key alone: a read of 100 keys then makes no (table, key) tuple per key
    and hashes no tuple (a third of the layer's cost). The tables share the budget: past it, the largest table
    gives up its least recently used entries, so under pressure the tables in use end up with even shares."""

    layer = "l1"
    local = True

    def __init__(
        self, ttl_s: float = 0.1, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl_s <= 0 or max_entries < 1:
            raise ValueError("L1 cache needs ttl_s > 0 and max_entries >= 1")
        self.ttl_s = ttl_s
        self.clock = clock  # seconds, monotonic: what entries expire by
        self.max_entries = max_entries
        self._tables: dict[str, OrderedDict[EntityKey, Entry]] = {}
        self._size = 0
        self._lock = threading.Lock()

    def update(self, table: OnlineTable) -> None:
        self.teardown(table)

    def read_started(self) -> float:
        return self.clock()

    def put(
        self, table: OnlineTable, rows: Sequence[EntityRow | FeatureValues], read_started: float | None = None
    ) -> None:
        """The read-through fill (rows, or the found answers of a read below): each row unless its entry is newer.
        Entries expire ``ttl_s`` after ``read_started`` when given: another process's write may have landed any
        time after the read below began, and this cache never hears of it."""
        self._write(table, rows, refresh=False, since=self.clock() if read_started is None else read_started)

    def refresh(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        """After the primary took ``rows``: older entries become the rows, missing ones a marker (module doc)."""
        self._write(table, rows, refresh=True, since=self.clock())

    def _write(
        self, table: OnlineTable, rows: Sequence[EntityRow | FeatureValues], refresh: bool, since: float
    ) -> None:
        expires = since + self.ttl_s
        # A fill's row holding exactly the table's features, none to convert, is kept as it is (entries never
        # change in place; answers are read-only). Every entry holds exactly the names of the table it was
        # written for, so `hits` only counts them (a table's schema change clears its entries: `update`).
        columns = None if refresh or table.timestamp_features else table.features.keys()
        written = cast("Sequence[EntityRow]", rows)  # found answers (never a miss) carry a timestamp, as rows do
        with self._lock:
            entries = self._tables.get(table.name)
            if entries is None:
                entries = self._tables[table.name] = OrderedDict()
            get, move_to_end, before = entries.get, entries.move_to_end, len(entries)
            for row in written:
                key = row.key
                current = get(key)
                if current is not None and current[1] > row.feature_ts:
                    continue
                values: dict[str, Any] | None = row.values
                if row.values.keys() != columns:  # never equal to None: every refresh, and fills to convert
                    values = _MARKER if refresh and current is None else _stored_row(table, row)
                entries[key] = (expires, row.feature_ts, values)
                if current is not None:  # a new entry is at the LRU's end already
                    move_to_end(key)
            self._size += len(entries) - before
            if self._size > self.max_entries:
                self._evict(self._size - self.max_entries)

    def _evict(self, count: int) -> None:
        """Drop ``count`` entries, the least recently used of the largest table (the lock is held)."""
        while count > 0:
            largest = max(self._tables.values(), key=len)  # once per fill: the fill's excess comes from one table
            take = min(count, len(largest))
            for _ in range(take):
                largest.popitem(last=False)
            self._size -= take
            count -= take

    def hits(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues | None]:
        """``get`` with None for a miss (no object made for it)."""
        now, layer = self.clock(), self.layer
        # Entries answer as they are when the whole row is asked (read-only: entries never change in place); an
        # entry of another size was written for another schema of the table.
        whole = len(table.features) if not table.timestamp_features and set(features) == table.features.keys() else -1
        with self._lock:
            entries = self._tables.get(table.name)
            if entries is None:
                return [None] * len(keys)
            answers: list[Any] = list(map(entries.get, keys))  # entries first: most are misses or hits
            move_to_end = entries.move_to_end
            for i, entry in enumerate(answers):
                if entry is None:
                    continue
                answers[i] = None
                if entry[0] > now and entry[1] <= read_ts and entry[2] is not _MARKER:
                    key = keys[i]
                    move_to_end(key)
                    stored = entry[2]
                    if len(stored) == whole:
                        answers[i] = FeatureValues(key, entry[1], stored, layer)
                    else:
                        answers[i] = _project(table, key, entry[1], stored, features, layer)
        return answers

    def invalidate(self, table: OnlineTable, keys: Sequence[EntityKey]) -> None:
        with self._lock:
            entries = self._tables.get(table.name)
            if entries is None:
                return
            before = len(entries)
            for key in keys:
                entries.pop(key, None)
            self._size -= before - len(entries)

    def __len__(self) -> int:
        return self._size

    def teardown(self, table: OnlineTable) -> None:
        with self._lock:
            entries = self._tables.pop(table.name, None)
            self._size -= len(entries) if entries is not None else 0

    def close(self) -> None:
        with self._lock:
            self._tables.clear()
            self._size = 0


class RedisCache(CacheLayer):
    """L2: compact msgpack rows in Redis with a TTL (the seed's 300 s), read with one MGET.

    Reads go through ``read_client`` when given: a client whose timeout is the serving deadline, without retries,
    so a read answers (or fails, and the primary answers) within the deadline in the caller's own thread. A read on
    an event loop (`hits_many_async`) goes through ``async_reader``, bounded by the same deadline."""

    layer = "redis"
    local = False

    def __init__(
        self,
        client: Any,
        ttl_s: int = 300,
        prefix: str = "mr",
        read_client: Any = None,
        async_reader: AsyncRedisReader | None = None,
    ) -> None:
        if ttl_s < 1:
            raise ValueError("Redis cache ttl_s must be at least 1 second")
        self.client = client
        self.read_client = read_client or client
        self._reader = RedisReader(self.read_client)
        self._async_reader = async_reader
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._set_if_newer = client.register_script(_SET_IF_NEWER)
        self._refresh = client.register_script(_REFRESH)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisCache:
        """The production L2: the online store's TTL, reads bounded by the serving deadline without retries; one
        Redis may front several keyspaces (deployments, test runs), so keys carry the keyspace."""
        from ma_ray.config import CassandraOnlineStoreConfig, SettingsError
        from ma_ray.connections import redis_client

        config = settings.online_store
        if not isinstance(config, CassandraOnlineStoreConfig):
            raise SettingsError(f"the Redis cache fronts the cassandra online store, not the {config.type} one")
        reader = redis_client(settings, timeout_s=config.feature_timeout_s, retries=0)
        async_reader = AsyncRedisReader(settings.redis.url, timeout_s=config.feature_timeout_s)
        prefix = f"mr:{settings.cassandra.keyspace}"
        return cls(
            redis_client(settings),
            ttl_s=config.redis_cache_ttl_s,
            prefix=prefix,
            read_client=reader,
            async_reader=async_reader,
        )

    def _key(self, table: OnlineTable, key: EntityKey) -> str:
        return f"{self.prefix}:{table.name}:{key}"

    def update(self, table: OnlineTable) -> None:
        """Nothing to create; rows cached under an older schema are treated as misses when a feature is new."""

    def put(
        self, table: OnlineTable, rows: Sequence[EntityRow | FeatureValues], read_started: float | None = None
    ) -> None:
        """The read-through fill (rows, or the found answers of a read below): each row unless its entry is newer.
        Its TTL only bounds memory: writers refresh Redis itself, so a slow fill loses to them (``read_started``
        is not needed)."""
        self._write(self._set_if_newer, table, rows)

    def refresh(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        """After the primary took ``rows``: older entries become the rows, missing ones a marker (module doc)."""
        self._write(self._refresh, table, rows)

    def _write(self, script: Any, table: OnlineTable, rows: Sequence[EntityRow | FeatureValues]) -> None:
        if not rows:
            return
        keys, args = [], []
        for row in rows:
            stored = _stored_row(table, row)
            keys.append(self._key(table, row.key))
            feature_ts = cast("int", row.feature_ts)  # rows, or found answers: never a miss
            args += [str(feature_ts), _entry(feature_ts, stored)]
        script(keys=keys, args=[*args, self.ttl_s])

    def hits(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues | None]:
        """``get`` with None for a miss: no entry, one newer than ``read_ts``, a marker, or an older schema's row."""
        return self.hits_many([(table, keys, features)], read_ts)[0]

    def hits_many(self, reads: Sequence[CacheRead], read_ts: int) -> list[list[FeatureValues | None]]:
        """`hits` of every table in one MGET (none when no key is asked)."""
        names = self._names_of(reads)
        return self._answers_of(reads, read_ts, self._reader.mget(names) if names else [])

    async def hits_many_async(self, reads: Sequence[CacheRead], read_ts: int) -> list[list[FeatureValues | None]]:
        """`hits_many` with the MGET awaited on the running loop, through ``async_reader`` (without one, as
        `hits_many`)."""
        if self._async_reader is None:
            return self.hits_many(reads, read_ts)
        names = self._names_of(reads)
        return self._answers_of(reads, read_ts, await self._async_reader.mget(names) if names else [])

    def _names_of(self, reads: Sequence[CacheRead]) -> list[str]:
        if len(reads) == 1:
            return self._names(reads[0][0], reads[0][1])
        return [name for table, keys, _ in reads for name in self._names(table, keys)]

    def _answers_of(
        self, reads: Sequence[CacheRead], read_ts: int, raw: list[bytes | None]
    ) -> list[list[FeatureValues | None]]:
        """Each read's answers from its run of one MGET's reply (the runs in ``reads`` order)."""
        answers, start = [], 0
        for table, keys, features in reads:
            end = start + len(keys)
            answers.append(self._answers(table, keys, features, read_ts, raw[start:end]))
            start = end
        return answers

    def _names(self, table: OnlineTable, keys: Sequence[EntityKey]) -> list[str]:
        prefix = f"{self.prefix}:{table.name}:"
        if table.key_type is FeatureType.STRING:
            return [prefix + key for key in cast("Sequence[str]", keys)]
        return [prefix + str(key) for key in keys]

    def _answers(
        self,
        table: OnlineTable,
        keys: Sequence[EntityKey],
        features: Sequence[str],
        read_ts: int,
        raw: list[bytes | None],
    ) -> list[FeatureValues | None]:
        found = [i for i, entry in enumerate(raw) if entry is not None]
        columns, layer = table.features.keys(), self.layer
        whole_rows = not table.timestamp_features and set(features) == columns  # a fill: rows kept as unpacked
        answers: list[FeatureValues | None] = [None] * len(keys)
        for i, (feature_ts, stored) in zip(found, _entries([cast("bytes", raw[i]) for i in found]), strict=True):
            if stored is None or feature_ts > read_ts:  # a marker, or too new
                continue
            if whole_rows and stored.keys() == columns:
                answers[i] = FeatureValues(keys[i], feature_ts, stored, layer)
            else:
                answers[i] = _project(table, keys[i], feature_ts, stored, features, layer)
        return answers

    def invalidate(self, table: OnlineTable, keys: Sequence[EntityKey]) -> None:
        if keys:
            self.client.delete(*[self._key(table, key) for key in keys])

    def teardown(self, table: OnlineTable) -> None:
        for batch in _batched(self.client.scan_iter(match=f"{self.prefix}:{table.name}:*", count=1000), 1000):
            self.client.delete(*batch)

    def close(self) -> None:
        self._reader.close()
        if self._async_reader is not None:
            self._async_reader.close()
        self.client.close()
        if self.read_client is not self.client:
            self.read_client.close()


def _entry(feature_ts: int, stored: dict[str, Any]) -> bytes:
    row: bytes = msgpack.packb(stored)
    return _ENTRY_HEADER + feature_ts.to_bytes(8, "big", signed=True) + row


def _entries(raw: list[bytes]) -> Sequence[tuple[int, dict[str, Any] | None]]:
    """The (feature_ts, row) of each entry, decoded in one unpack; an entry of another shape (an older release's
    "<ts>|<row>") decodes as (-1, None), a miss. Entries are whole msgpack objects, so one of another shape adds
    objects and the one unpack fails rather than misreading: then each entry is decoded on its own."""
    count = len(raw)
    try:
        decoded: Sequence[Any] = msgpack.unpackb(b"\xdd" + count.to_bytes(4, "big") + b"".join(raw), use_list=False)
    except ValueError:  # ExtraData, a truncated or malformed entry
        decoded = [msgpack.unpackb(entry) if entry.startswith(_ENTRY_HEADER) else (-1, None) for entry in raw]
    return decoded


def _batched(items: Any, size: int) -> Any:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
