"""Every online backend and cache tier implements the whole base, so callers never probe for a method."""

import pytest

from ma_ray.palette.online import CacheLayer, InProcessCache, OnlineStore, RedisCache, TieredOnlineStore
from ma_ray.palette.online.cassandra import CassandraOnlineStore
from ma_ray.palette.online.sqlite import SqliteOnlineStore

BACKENDS = (SqliteOnlineStore, CassandraOnlineStore, TieredOnlineStore, InProcessCache, RedisCache)


@pytest.mark.unit
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda cls: cls.__name__)
def test_each_backend_implements_every_method_of_the_base(backend: type[OnlineStore]) -> None:
    assert issubclass(backend, OnlineStore) and not backend.__abstractmethods__
    assert isinstance(backend.layer, str)


@pytest.mark.unit
def test_caches_are_cache_tiers_and_breakers_are_asked_of_any_store() -> None:
    assert issubclass(InProcessCache, CacheLayer) and issubclass(RedisCache, CacheLayer)
    assert InProcessCache().breaker_states() == {}  # one backend: its caller's breaker guards it
    tiered = TieredOnlineStore(InProcessCache(), [])
    assert tiered.breaker_states() == {"l1": "closed"}


@pytest.mark.unit
def test_a_backend_missing_a_method_cannot_be_made() -> None:
    class Partial(OnlineStore):
        tier, local = "partial", True

        def get(self, table, keys, features, read_ts):
            return []

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]
