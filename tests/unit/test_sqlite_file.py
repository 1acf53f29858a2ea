"""Stores that share one embedded SQLite file open it at once (aggregation actors, replicas, their threads): none
may fail while another switches a new file to WAL. SQLite keeps its lock bookkeeping per connection, so threads
race for the switch as processes do."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from ma_ray.sqlite_file import connect_wal

_OPENERS = 4
_ROUNDS = 100


def _open_all_at_once(path: Path) -> list[BaseException]:
    barrier = threading.Barrier(_OPENERS)
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait(timeout=30)
        try:
            connect_wal(path).close()
        except sqlite3.Error as error:
            errors.append(error)

    openers = [threading.Thread(target=open_one) for _ in range(_OPENERS)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join(timeout=60)
    return errors


def test_connections_opening_a_new_file_at_once_all_get_wal(tmp_path: Path) -> None:
    for round_ in range(_ROUNDS):
        path = tmp_path / f"{round_}.sqlite"
        assert _open_all_at_once(path) == [], f"round {round_}"
        assert connect_wal(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_error_other_than_locked_is_not_retried(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        connect_wal(tmp_path / "dir.sqlite", timeout_s=600)
