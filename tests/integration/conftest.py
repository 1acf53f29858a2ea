"""Backends under test, one fixture each: every suite using one runs on embedded SQLite and on the real
Cassandra (with Redis in front of the online store), each test (or module, for Gallery) in a keyspace of its own."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ma_ray.config import Settings, load_settings
from ma_ray.connections import cassandra_cluster
from ma_ray.gallery import GalleryStore
from ma_ray.palette.meta_store import MetaStore


def store_per_backend(
    request: pytest.FixtureRequest, sqlite: Callable[[], Any], cassandra: Callable[[Settings, str], Any], name: str
) -> Iterator[Any]:
    """The body of a fixture parametrised over ``sqlite`` / ``cassandra``: the embedded store, or one on the
    session's Cassandra in a keyspace of its own (``test_<name>_<random>``, dropped after); closed either way."""
    if request.param == "sqlite":
        store = sqlite()
        yield store
        store.close()
        return
    store = cassandra(request.getfixturevalue("services"), f"test_{name}_{uuid.uuid4().hex[:10]}")
    yield store
    store.drop()
    store.close()


@pytest.fixture(params=["sqlite", "cassandra"])
def meta_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetaStore]:
    from ma_ray.palette.meta_store.cassandra import CassandraMetaStore
    from ma_ray.palette.meta_store.sqlite import SqliteMetaStore

    sqlite = partial(SqliteMetaStore, tmp_path / "meta.sqlite")
    yield from store_per_backend(request, sqlite, lambda s, keyspace: CassandraMetaStore(s, keyspace=keyspace), "meta")


@pytest.fixture(scope="module", params=["sqlite", "cassandra"])
def gallery_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GalleryStore]:
    """One Gallery store per backend for the module; tests isolate by model name."""
    from ma_ray.gallery.store.cassandra import CassandraGalleryStore
    from ma_ray.gallery.store.sqlite import SqliteGalleryStore

    def sqlite() -> SqliteGalleryStore:
        return SqliteGalleryStore(tmp_path_factory.mktemp("gallery") / "gallery.sqlite")

    def cassandra(settings: Settings, keyspace: str) -> CassandraGalleryStore:
        return CassandraGalleryStore(settings, keyspace=keyspace)

    yield from store_per_backend(request, sqlite, cassandra, "gallery")


def online_settings(services: Settings | None, state_dir: Path, **overrides: object) -> Settings:
    """Embedded settings (``services`` None), or the session's Cassandra + Redis in a keyspace (and Redis prefix)
    of the caller's own, with timeouts generous enough for two busy cores."""
    if services is None:
        return load_settings(state_dir=state_dir, **overrides)
    production = {
        "state_dir": state_dir, "offline_uri": "", "artifact_uri": "", "online_store": "cassandra",
        "cassandra_keyspace": f"t_{uuid.uuid4().hex[:8]}", "cassandra_request_timeout_s": 5.0,
        "feature_timeout_s": 5.0,
    }  # fmt: skip
    return load_settings(**{**services.model_dump(), **production, **overrides})


def drop_online_keyspace(services: Settings, settings: Settings) -> None:
    cluster = cassandra_cluster(services)
    cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra.keyspace}_online")
    cluster.shutdown()
