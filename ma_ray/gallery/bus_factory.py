"""Pick the alias-change bus the settings name: Redis pub/sub in production; embedded, a hub actor shared by
every process of the Ray cluster, or an in-process bus where no Ray runs (a CLI call)."""

from __future__ import annotations

from ma_ray.config import BroadcastKind, Settings
from ma_ray.gallery.broadcast import AliasBus, InProcessAliasBus, RedisAliasBus


def open_alias_bus(settings: Settings) -> AliasBus:
    if settings.alias_broadcast is BroadcastKind.REDIS:
        from ma_ray.connections import redis_client

        return RedisAliasBus(redis_client(settings), namespace=f"{settings.cassandra_keyspace}:gallery")
    import ray

    if ray.is_initialized():
        from ma_ray.gallery.ray_bus import RayAliasBus

        return RayAliasBus()
    return InProcessAliasBus()
