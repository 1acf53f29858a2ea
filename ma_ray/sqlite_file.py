"""One SQLite file shared by the embedded stores' threads and processes: WAL, a connection guarded by a lock,
writes in immediate (write-locked) transactions."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_BUSY_TIMEOUT_S = 30.0


def connect_wal(path: str | Path, timeout_s: float = _BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode. Processes opening a new file at once each need the write lock to
    switch its journal mode, and SQLite answers "locked" at once, without waiting, to the one that would
    deadlock; so the switch is retried until ``timeout_s``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return db
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(0.01)


class SqliteFile:
    def __init__(self, path: str | Path, schema: str) -> None:
        self._db = connect_wal(path)
        self._lock = threading.Lock()
        self._db.executescript(schema)

    def transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in an immediate transaction; it commits unless ``body`` raises."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = body(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        self._db.close()
