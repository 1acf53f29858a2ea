"""The online store base, shared by every backend and cache layer.

Rows are identified by (entity key, feature timestamp) and writes are idempotent on that pair. A read names
one ``read_ts`` for the whole request (the seed's snapshot isolation): each key gets its newest row written at
or before that instant, so a streaming update racing with a prediction is either wholly in or wholly out.
Timestamps are int epoch microseconds (UTC); timestamp-typed feature values come back as aware datetimes.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from ma_ray.palette.catalog import FeatureGroup, FeatureRepository, UnknownFeatureError
from ma_ray.palette.types import FeatureType

EntityKey = str | int
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
BATCH_FALLBACK_SUFFIX = "__batch"


@dataclass(frozen=True)
class OnlineTable:
    """What a backend needs to know about one feature group: its table name, key type, features, TTL."""

    catalog: str
    group: str
    key_type: FeatureType
    features: dict[str, FeatureType]
    ttl_s: int

    @property
    def name(self) -> str:
        return f"{self.catalog}__{self.group}"

    @classmethod
    def of(cls, repo: FeatureRepository, group: FeatureGroup) -> OnlineTable:
        """The stored features of a group (derived features are computed at read time, never stored)."""
        entity = repo.entity(group.entity or "")
        stored = {f.name: f.type for f in group.features if f.expression is None}
        return cls(repo.catalog, group.name, entity.key_type, stored, group.ttl_s)

    @cached_property
    def timestamp_features(self) -> frozenset[str]:
        """Features whose stored form (epoch microseconds) is converted on read: a read of none skips the check."""
        return frozenset(name for name, kind in self.features.items() if kind is FeatureType.TIMESTAMP)

    def batch_fallback(self) -> OnlineTable:
        """Where the batch pipeline keeps a streaming group's batch values, served while the stream lags."""
        return replace(self, group=f"{self.group}{BATCH_FALLBACK_SUFFIX}")

    def check_features(self, names: Sequence[str]) -> None:
        unknown = [n for n in names if n not in self.features]
        if unknown:
            raise UnknownFeatureError(
                f"{self.catalog}.{self.group} has no stored feature(s) {', '.join(unknown)}; "
                f"it has {', '.join(self.features)}"
            )


@dataclass(frozen=True)
class EntityRow:
    """One version of one entity's features, as written by a batch load or a stream micro-batch."""

    key: EntityKey
    feature_ts: int
    values: dict[str, Any]


@dataclass(slots=True)
class FeatureValues:
    """The answer for one key: ``feature_ts`` None means the store has no row at or before read_ts. ``values``
    is read-only: a cache may answer with the very dict it holds."""

    key: EntityKey
    feature_ts: int | None
    values: dict[str, Any] = field(default_factory=dict)
    layer: str = ""

    @property
    def found(self) -> bool:
        return self.feature_ts is not None


class OnlineStore(ABC):
    """Batched reads and writes of the newest feature values per entity: the base every backend, cache layer and the
    tiered store implement, owning every method callers use."""

    layer: str
    # True when a read never waits on a network, another process or a writer (memory, a local WAL file): a
    # reader may then call it in its own thread, with no deadline to enforce.
    local: bool

    @abstractmethod
    def update(self, table: OnlineTable) -> None:
        """Create or evolve the table (new features become new columns); idempotent."""

    @abstractmethod
    def put(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        """Write rows; the same (key, feature_ts) written twice leaves one row."""

    @abstractmethod
    def get(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues]:
        """One answer per key, in order: the newest row at or before ``read_ts``, projected on ``features``."""

    async def get_async(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues]:
        """`get` awaited on an event loop: on the loop's executor here; a backend with an async client (Cassandra)
        reads with no thread between."""
        return await asyncio.get_running_loop().run_in_executor(None, self.get, table, keys, features, read_ts)

    @abstractmethod
    def prune(self, table: OnlineTable, keys: Sequence[EntityKey], before_ts: int) -> None:
        """Delete the rows of ``keys`` written before ``before_ts`` (versions a newer load superseded)."""

    @abstractmethod
    def teardown(self, table: OnlineTable) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def breaker_states(self) -> dict[str, str]:
        """Each backend's circuit breaker state by layer; a single backend has none of its own (its caller's
        breaker guards it)."""
        return {}


# One table's keys and the features wanted of them, in a cache read across tables (`CacheLayer.hits_many`).
CacheRead = tuple[OnlineTable, Sequence[EntityKey], Sequence[str]]


class CacheLayer(OnlineStore):
    """A cache in front of the primary (`ma_ray.palette.online.caches`): ``put`` is its read-through fill;
    ``refresh`` follows a write the primary took, ordered so no fill can put an older value back over it. Its
    ``get`` answers within the serving deadline (an in-process dict, or a client whose read timeout is the
    deadline), so readers ask caches in their own thread and only the primary under a deadline."""

    @abstractmethod
    def hits(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues | None]:
        """``get`` with None for a key it does not hold (no object made for a miss)."""

    def hits_many(self, reads: Sequence[CacheRead], read_ts: int) -> list[list[FeatureValues | None]]:
        """`hits` of several tables at once (a request's feature groups), in ``reads`` order; a networked cache
        answers them all in one round trip."""
        return [self.hits(table, keys, features, read_ts) for table, keys, features in reads]

    async def hits_many_async(self, reads: Sequence[CacheRead], read_ts: int) -> list[list[FeatureValues | None]]:
        """`hits_many` for an event loop; a networked cache overrides it to await its one round trip."""
        return self.hits_many(reads, read_ts)

    def get(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues]:
        """``hits`` with a miss answered as a row with no timestamp."""
        hits = self.hits(table, keys, features, read_ts)
        return [answer or FeatureValues(key, None, {}, "") for key, answer in zip(keys, hits, strict=True)]

    def read_started(self) -> float:
        """A stamp on this cache's own clock, taken before a read of the layers below and handed back to ``put``."""
        return time.monotonic()

    @abstractmethod
    def put(
        self, table: OnlineTable, rows: Sequence[EntityRow | FeatureValues], read_started: float | None = None
    ) -> None:
        """The read-through fill: rows, or the found answers of a read of the layer below. A cache whose entries
        expire by time counts their life from ``read_started`` (`read_started()` back-dated to the read's
        timestamp), so a slow read never stretches how long a value outlives a newer write."""

    @abstractmethod
    def refresh(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None: ...

    @abstractmethod
    def invalidate(self, table: OnlineTable, keys: Sequence[EntityKey]) -> None: ...

    def prune(self, table: OnlineTable, keys: Sequence[EntityKey], before_ts: int) -> None:
        """Nothing to do: a cache holds only the newest row per key."""


def now_us() -> int:
    return (datetime.now(UTC) - EPOCH) // _MICROSECOND


def to_stored(kind: FeatureType, value: Any) -> Any:
    """A value as every backend stores it: timestamps become epoch microseconds."""
    if value is None or kind is not FeatureType.TIMESTAMP or isinstance(value, int):
        return value
    return ((value if value.tzinfo else value.replace(tzinfo=UTC)) - EPOCH) // _MICROSECOND


def from_stored(kind: FeatureType, value: Any) -> Any:
    if value is None or kind is not FeatureType.TIMESTAMP:
        return value
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return EPOCH + timedelta(microseconds=value)
