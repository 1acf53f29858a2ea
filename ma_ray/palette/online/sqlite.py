"""The embedded online store: one SQLite table per feature group, (key, feature_ts) as primary key."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

from ma_ray.config import Settings
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
from ma_ray.sqlite_file import connect_wal

_SQL_TYPES = {
    FeatureType.INT: "INTEGER",
    FeatureType.FLOAT: "REAL",
    FeatureType.BOOL: "INTEGER",
    FeatureType.STRING: "TEXT",
    FeatureType.TIMESTAMP: "INTEGER",
}

_CONVERTED = (FeatureType.BOOL, FeatureType.TIMESTAMP)  # stored as integers
KEYS_PER_QUERY = 500  # well under SQLite's bound-parameter limit


_KEY = itemgetter(0)


@lru_cache(maxsize=1024)
def _select(table: str, features: tuple[str, ...], keys: int) -> str:
    """Each key's newest row at or before a timestamp: (key, feature_ts, *features). SQLite's max() takes the
    other columns from the row holding the maximum (documented)."""
    columns = ", ".join(f'"{n}"' for n in features)
    return (
        f'SELECT entity_key, MAX(feature_ts), {columns} FROM "{table}" '
        f"WHERE entity_key IN ({', '.join('?' * keys)}) AND feature_ts <= ? GROUP BY entity_key"
    )


class SqliteOnlineStore(OnlineStore):
    """Writes go through one connection; reads through another, so a load never holds a reader up (WAL)."""

    layer = "sqlite"
    local = True

    @classmethod
    def from_settings(cls, settings: Settings) -> SqliteOnlineStore:
        return cls(settings.state_dir.absolute() / "online.sqlite")

    def __init__(self, path: str | Path) -> None:
        self._db = connect_wal(path)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()
        self._reader = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._read_lock = threading.Lock()

    def update(self, table: OnlineTable) -> None:
        key_type = "TEXT" if table.key_type is FeatureType.STRING else "INTEGER"
        with self._lock:
            self._db.execute(
                f'CREATE TABLE IF NOT EXISTS "{table.name}" (entity_key {key_type} NOT NULL, '
                "feature_ts INTEGER NOT NULL, PRIMARY KEY (entity_key, feature_ts DESC)) WITHOUT ROWID"
            )
            existing = {row[1] for row in self._db.execute(f'PRAGMA table_info("{table.name}")')}
            for name, kind in table.features.items():
                if name not in existing:
                    self._db.execute(f'ALTER TABLE "{table.name}" ADD COLUMN "{name}" {_SQL_TYPES[kind]}')

    def put(self, table: OnlineTable, rows: Sequence[EntityRow]) -> None:
        names = list(table.features)
        columns = ", ".join(f'"{n}"' for n in ["entity_key", "feature_ts", *names])
        marks = ", ".join("?" * (len(names) + 2))
        data = [
            (row.key, row.feature_ts, *(to_stored(table.features[n], row.values.get(n)) for n in names)) for row in rows
        ]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(f'INSERT OR REPLACE INTO "{table.name}" ({columns}) VALUES ({marks})', data)
            self._db.execute("COMMIT")

    def get(
        self, table: OnlineTable, keys: Sequence[EntityKey], features: Sequence[str], read_ts: int
    ) -> list[FeatureValues]:
        """One query per ``KEYS_PER_QUERY`` keys: each key's newest row at or before ``read_ts``."""
        table.check_features(features)
        named = tuple(features)
        found: dict[EntityKey, tuple[Any, ...]] = {}
        with self._read_lock:
            for start in range(0, len(keys), KEYS_PER_QUERY):
                chunk = keys[start : start + KEYS_PER_QUERY]
                rows = self._reader.execute(_select(table.name, named, len(chunk)), (*chunk, read_ts)).fetchall()
                found.update(zip(map(_KEY, rows), rows, strict=True))
        values_of = row_to_dict(named, 2)  # a row is (key, ts, *features)
        converted = [(name, table.features[name]) for name in features if table.features[name] in _CONVERTED]
        if converted:
            return [self._answer(key, values_of, found.get(key), converted) for key in keys]
        layer, get = self.layer, found.get
        # the common case, per key as little as it can be: one dict, one answer
        return [
            FeatureValues(key, None, {}, layer)
            if (row := get(key)) is None
            else FeatureValues(key, row[1], values_of(row), layer)
            for key in keys
        ]

    def _answer(
        self,
        key: EntityKey,
        values_of: RowToDict,
        row: tuple[Any, ...] | None,
        converted: list[tuple[str, FeatureType]],
    ) -> FeatureValues:
        if row is None:
            return FeatureValues(key, None, {}, self.layer)
        values = values_of(row)
        for name, kind in converted:
            value = values[name]
            values[name] = bool(value) if kind is FeatureType.BOOL and value is not None else from_stored(kind, value)
        return FeatureValues(key, row[1], values, self.layer)

    def prune(self, table: OnlineTable, keys: Sequence[EntityKey], before_ts: int) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                f'DELETE FROM "{table.name}" WHERE entity_key = ? AND feature_ts < ?', [(k, before_ts) for k in keys]
            )
            self._db.execute("COMMIT")

    def teardown(self, table: OnlineTable) -> None:
        with self._lock:
            self._db.execute(f'DROP TABLE IF EXISTS "{table.name}"')

    def close(self) -> None:
        self._reader.close()
        self._db.close()
