"""The production health board: one Redis hash per streaming group (field: actor, value: its health as JSON), so
aggregation actors and readers on any node of the cluster read the same lag state."""

from __future__ import annotations

from typing import Any

from ma_ray.config import Settings
from ma_ray.palette.streaming.health import StreamHealth, health_from_json, health_to_json

# A hash no actor has written to for this long is dropped: its actors are gone, not merely lagging.
BOARD_TTL_S = 7 * 86_400


class RedisHealthBoard:
    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisHealthBoard:
        from ma_ray.connections import redis_client

        # Keys carry the keyspace, as the online cache's do: one Redis may serve several deployments.
        return cls(redis_client(settings), prefix=f"mr:{settings.cassandra.keyspace}:stream_health")

    def _key(self, catalog: str, group: str) -> str:
        return f"{self.prefix}:{catalog}:{group}"

    def publish(self, catalog: str, group: str, health: StreamHealth) -> None:
        key = self._key(catalog, group)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, health.actor, health_to_json(health))
        pipe.expire(key, BOARD_TTL_S)
        pipe.execute()

    def read(self, catalog: str, group: str) -> list[StreamHealth]:
        entries = self.client.hgetall(self._key(catalog, group))
        return [health_from_json(entries[actor]) for actor in sorted(entries)]
