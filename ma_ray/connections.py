"""Clients for the real servers (Redis, Cassandra, Kafka), configured from `Settings` in one place.

Every store, the service health checks and the benchmarks connect through these functions, so the seed's
tuning (token-aware routing, LOCAL_QUORUM, pool sizes, timeouts) is set once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from ma_ray.config import Settings

if TYPE_CHECKING:
    import redis
    from cassandra.cluster import Cluster
    from confluent_kafka.admin import AdminClient

ONLINE_READ_PROFILE = "online_read"

# librdkafka logs through Python logging (not straight to stderr), so applications choose what they see.
KAFKA_LOGGER = logging.getLogger("ma_ray.kafka")


def redis_client(settings: Settings, timeout_s: float = 2.0, retries: int = 1) -> redis.Redis:
    """A pooled Redis client that returns bytes (values are compact binary, not text). It retries once by
    default, quickly: Redis is a cache on the serving path, and a slow failure costs more than a miss."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        settings.redis.url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=retries),
        max_connections=settings.cassandra.pool_size,
        health_check_interval=30,
    )


class _ThreadConnection(threading.local):
    connection: Any = None  # this thread's, opened on its first read


class RedisReader:
    """``client.mget(keys)`` in one round trip without redis-py's per-command layers (per-key encoding in Python,
    the retry wrapper, response callbacks) and without its pool: each reading thread keeps a connection of its
    own, so a read takes no pool lock, no readiness poll and no pool bookkeeping (about 15 us of a 100-key read).
    Keys are ``str``; the client's socket timeout bounds the read; a connection that failed mid-command is
    dropped, never reused with half a reply in it (the thread's next read connects afresh)."""

    def __init__(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        self._open_connection = partial(pool.connection_class, **pool.connection_kwargs)
        self._thread = _ThreadConnection()
        self._opened: weakref.WeakSet[Any] = weakref.WeakSet()  # every thread's, for `close`
        self._lock = threading.Lock()

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        from hiredis import pack_command

        connection = self._thread.connection or self._connection()
        try:
            # redis-py leaves send_packed_command and disconnect unannotated; hiredis's stub types pack_command's
            # argument as a 1-tuple, where it takes a command of any length
            connection.send_packed_command([pack_command(("MGET", *keys))])  # type: ignore[arg-type]
            reply: list[bytes | None] = connection.read_response()
            return reply
        except BaseException:
            connection.disconnect()
            raise

    def _connection(self) -> Any:
        connection = self._thread.connection = self._open_connection()
        with self._lock:
            self._opened.add(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            opened = list(self._opened)
        for connection in opened:
            connection.disconnect()


# Idle connections an event loop keeps: a pool replica's max_ongoing_requests (64), so that a replica at its limit,
# every request reading Redis at once, reuses its connections instead of opening one per read.
ASYNC_REDIS_MAX_IDLE = 64


class AsyncRedisReader:
    """`RedisReader`'s MGET for an event loop: the round trip awaited, so the loop serves other requests meanwhile.
    Each loop keeps its own idle connections (an asyncio connection belongs to the loop that opened it), up to
    ``max_idle``; a read takes one or opens one, so reads in flight on a loop never share a socket. The
    connection's socket timeout (``timeout_s``, the serving deadline) bounds connect and read; a connection that
    failed mid-command is dropped, never reused with half a reply in it."""

    def __init__(self, url: str, timeout_s: float, max_idle: int = ASYNC_REDIS_MAX_IDLE) -> None:
        import redis.asyncio

        # from_url parses every scheme Settings allows (redis://, rediss://, unix://); its pool is never used
        pool = redis.asyncio.ConnectionPool.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._open_connection = partial(pool.connection_class, **pool.connection_kwargs)
        self.max_idle = max_idle
        self._idle: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[Any]] = weakref.WeakKeyDictionary()

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        from hiredis import pack_command

        idle = self._idle.setdefault(asyncio.get_running_loop(), [])
        connection = idle.pop() if idle else self._open_connection()
        try:
            # hiredis's stub types pack_command's argument as a 1-tuple, where it takes a command of any length
            await connection.send_packed_command([pack_command(("MGET", *keys))], check_health=False)  # type: ignore[arg-type]
            reply: list[bytes | None] = await connection.read_response()
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        if len(idle) < self.max_idle:
            idle.append(connection)
        else:
            await connection.disconnect(nowait=True)
        return reply

    def close(self) -> None:
        """Each running loop's idle connections closed on that loop; a stopped loop's close with its transports."""
        for loop, idle in list(self._idle.items()):
            if loop.is_running():
                for connection in idle:
                    asyncio.run_coroutine_threadsafe(connection.disconnect(nowait=True), loop)
            idle.clear()


def cassandra_cluster(settings: Settings, connect_timeout_s: float = 5.0) -> Cluster:
    """A Cluster with token-aware routing in the local DC, LOCAL_QUORUM (or the configured level) by default,
    and an ``online_read`` profile with the serving timeout and speculative execution for idempotent reads."""
    from cassandra import ConsistencyLevel
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import (
        ConstantSpeculativeExecutionPolicy,
        DCAwareRoundRobinPolicy,
        TokenAwarePolicy,
    )

    consistency = ConsistencyLevel.name_to_value[settings.cassandra.read_consistency]

    def routing() -> TokenAwarePolicy:
        return TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.cassandra.local_dc))

    default = ExecutionProfile(load_balancing_policy=routing(), consistency_level=consistency, request_timeout=10.0)
    online = ExecutionProfile(
        load_balancing_policy=routing(),
        consistency_level=consistency,
        request_timeout=settings.cassandra.request_timeout_s,
        speculative_execution_policy=ConstantSpeculativeExecutionPolicy(
            delay=settings.cassandra.request_timeout_s / 4, max_attempts=2
        ),
    )
    return Cluster(
        contact_points=settings.cassandra.hosts,
        port=settings.cassandra.port,
        execution_profiles={EXEC_PROFILE_DEFAULT: default, ONLINE_READ_PROFILE: online},
        protocol_version=5,
        connect_timeout=connect_timeout_s,
        control_connection_timeout=connect_timeout_s,
    )


def ensure_keyspace(session: Any, keyspace: str, settings: Settings, replication_factor: int = 1) -> None:
    """Create ``keyspace`` if missing, replicated in the local DC (NetworkTopologyStrategy, for LOCAL_QUORUM)."""
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', '{settings.cassandra.local_dc}': {replication_factor}}}"
    )


def open_keyspace(settings: Settings, keyspace: str, tables: Sequence[str] = ()) -> tuple[Cluster, Any]:
    """A connected (cluster, session) with ``keyspace`` and its ``tables`` created if missing; each table
    statement names the keyspace as ``{ks}``."""
    cluster = cassandra_cluster(settings)
    session = cluster.connect()
    ensure_keyspace(session, keyspace, settings)
    for statement in tables:
        session.execute(statement.format(ks=keyspace))
    return cluster, session


def kafka_common_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings shared by producers, consumers and the admin client."""
    return {"bootstrap.servers": settings.kafka.bootstrap, "client.id": "ma-ray", "logger": KAFKA_LOGGER}


def kafka_admin(settings: Settings) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    return AdminClient(kafka_common_config(settings))


def kafka_producer_config(settings: Settings) -> dict[str, Any]:
    """An idempotent producer: retries never duplicate an event within a partition."""
    return {
        **kafka_common_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    }


def kafka_consumer_config(settings: Settings, group_id: str) -> dict[str, Any]:
    """A consumer that commits offsets only when told to (after the writes they cover)."""
    return {
        **kafka_common_config(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }


T = TypeVar("T")
# What a broker answers for a few seconds while it elects a partition's leader or loads a group's coordinator
# (just started, restarted, or a topic just created).
_KAFKA_SETTLING = ("NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS", "COORDINATOR_NOT_AVAILABLE",
                   "NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "_TIMED_OUT")  # fmt: skip


def kafka_settled(call: Callable[[], T], timeout_s: float = 60.0, pause_s: float = 0.5) -> T:
    """``call``'s answer, asked again while the broker answers with a retriable or settling error, until
    ``timeout_s``; any other error, or one past the deadline, is raised."""
    from confluent_kafka import KafkaError, KafkaException

    settling = {getattr(KafkaError, name) for name in _KAFKA_SETTLING}
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except KafkaException as error:
            kafka_error = error.args[0]
            if not (kafka_error.retriable() or kafka_error.code() in settling) or time.monotonic() > deadline:
                raise
            time.sleep(pause_s)
