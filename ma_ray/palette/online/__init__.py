"""Online feature stores: SQLite (embedded) or Cassandra (production) behind an L1 and, in production, Redis."""

from ma_ray.config import Settings
from ma_ray.palette.catalog import UnknownFeatureError
from ma_ray.palette.online.base import (
    CacheLayer,
    CacheRead,
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
    """The read path the settings describe: L1 -> SQLite embedded, L1 -> Redis -> Cassandra in production."""
    config = settings.online_store
    caches: list[CacheLayer] = [InProcessCache(config.l1_cache_ttl_s, config.l1_cache_max_entries)]
    caches += [config.build(layer, settings) for layer in config.cache_layers]
    return TieredOnlineStore(config.build("store", settings), caches)


__all__ = [
    "UNAVAILABLE",
    "CacheLayer",
    "CacheRead",
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
