"""The meta store protocol's behaviour, identical on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ma_ray.palette.lineage import Edge
from ma_ray.palette.meta_store import GroupVersion, MetaStore, VersionConflictError

NOW = datetime(2026, 11, 27, 12, 0, 0, 123000, tzinfo=UTC)


def version(n: int, group: str = "driver_stats", catalog: str = "rideshare") -> GroupVersion:
    return GroupVersion(catalog, group, n, f'{{"v": {n}}}', NOW, "alice")


def test_versions_latest_at_and_history(meta_store: MetaStore) -> None:
    assert meta_store.group_version("rideshare", "driver_stats") is None
    for n in (1, 2, 3):
        meta_store.put_group_version(version(n))
    assert meta_store.group_version("rideshare", "driver_stats").version == 3
    at_two = meta_store.group_version("rideshare", "driver_stats", 2)
    assert at_two == version(2)
    assert meta_store.group_version("rideshare", "driver_stats", 9) is None
    assert [v.version for v in meta_store.group_versions("rideshare", "driver_stats")] == [1, 2, 3]


def test_a_version_is_written_once(meta_store: MetaStore) -> None:
    meta_store.put_group_version(version(1))
    with pytest.raises(VersionConflictError, match="another writer"):
        meta_store.put_group_version(GroupVersion("rideshare", "driver_stats", 1, "{}", NOW, "bob"))
    assert meta_store.group_version("rideshare", "driver_stats").applied_by == "alice"


def test_groups_catalogs_and_entities(meta_store: MetaStore) -> None:
    meta_store.put_group_version(version(1, "rider_stats"))
    meta_store.put_group_version(version(1, "driver_stats"))
    meta_store.put_group_version(version(1, "eats_stats", catalog="eats"))
    meta_store.put_entity("rideshare", "driver", '{"name": "driver"}')
    meta_store.put_entity("rideshare", "driver", '{"name": "driver", "v": 2}')
    assert meta_store.groups("rideshare") == ["driver_stats", "rider_stats"]
    assert meta_store.catalogs() == ["eats", "rideshare"]
    assert meta_store.entities("rideshare") == {"driver": '{"name": "driver", "v": 2}'}
    assert meta_store.entities("nowhere") == {}


def test_lineage_edges_both_directions_idempotent(meta_store: MetaStore) -> None:
    edges = [Edge("raw:trips", "group:r:a"), Edge("group:r:a", "f1"), Edge("group:r:a", "f2"), Edge("f1", "f3")]
    meta_store.add_edges(edges)
    meta_store.add_edges(edges[:2])
    assert sorted(meta_store.children("group:r:a")) == ["f1", "f2"]
    assert meta_store.parents("f3") == ["f1"]
    assert meta_store.parents("raw:trips") == []
    assert meta_store.children("nothing") == []
