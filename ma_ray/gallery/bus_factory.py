"""Pick the alias-change bus the settings name: Redis pub/sub in production, the in-process bus embedded."""

from __future__ import annotations

from ma_ray.config import BroadcastKind, Settings
from ma_ray.gallery.broadcast import AliasBus, InProcessAliasBus, RedisAliasBus


def open_alias_bus(settings: Settings) -> AliasBus:
    if settings.alias_broadcast is BroadcastKind.REDIS:
        from ma_ray.connections import redis_client

        return RedisAliasBus(redis_client(settings), namespace=f"{settings.cassandra_keyspace}:gallery")
    return InProcessAliasBus()
