"""Backends under test: every meta store suite runs on embedded SQLite and on the real Cassandra."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ma_ray.palette.meta_store import MetaStore


@pytest.fixture(params=["sqlite", "cassandra"])
def meta_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetaStore]:
    if request.param == "sqlite":
        from ma_ray.palette.meta_store.sqlite import SqliteMetaStore

        store = SqliteMetaStore(tmp_path / "meta.sqlite")
        yield store
        store.close()
        return
    from ma_ray.palette.meta_store.cassandra import CassandraMetaStore

    settings = request.getfixturevalue("services")
    store = CassandraMetaStore(settings, keyspace=f"test_meta_{uuid.uuid4().hex[:10]}")
    yield store
    store.drop()
    store.close()
