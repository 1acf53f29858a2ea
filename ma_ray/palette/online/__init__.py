"""Online feature stores: SQLite (embedded) or Cassandra (production) behind an L1 and, in production, Redis."""

from ma_ray.config import Settings, StoreBackend, backend_class
from ma_ray.palette.catalog import UnknownFeatureError
from ma_ray.palette.online.base import (
    CacheTier,
    EntityKey,
    EntityRow,
    FeatureValues,
    OnlineStore,
    OnlineTable,
    now_us,
)
from ma_ray.palette.online.caches import InProcessCache, RedisCache
from ma_ray.palette.online.tiered import UNAVAILABLE, TieredOnlineStore


def open_online_store(settings: Settings) -> TieredOnlineStore:
    """The read path the settings describe: L1 -> primary embedded, L1 -> Redis -> Cassandra in production."""
    primary: OnlineStore = backend_class("online_store", settings.online_store.value).from_settings(settings)
    caches: list[CacheTier] = [InProcessCache(settings.l1_cache_ttl_s, settings.l1_cache_max_entries)]
    if settings.online_store is StoreBackend.CASSANDRA:
        from ma_ray.connections import redis_client

        # One Redis may front several keyspaces (deployments, test runs): keys carry the keyspace.
        prefix = f"mr:{settings.cassandra_keyspace}"
        reader = redis_client(settings, timeout_s=settings.feature_timeout_s, retries=0)  # bounded by the deadline
        caches.append(
            RedisCache(redis_client(settings), ttl_s=settings.redis_cache_ttl_s, prefix=prefix, read_client=reader)
        )
    return TieredOnlineStore(primary, caches)


__all__ = [
    "UNAVAILABLE",
    "CacheTier",
    "EntityKey",
    "EntityRow",
    "FeatureValues",
    "InProcessCache",
    "OnlineStore",
    "OnlineTable",
    "RedisCache",
    "TieredOnlineStore",
    "UnknownFeatureError",
    "now_us",
    "open_online_store",
]
