"""The project's clients do real work against the real servers (no mocks)."""

from __future__ import annotations

import asyncio
import threading
import uuid

from cassandra.query import SimpleStatement
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from ma_ray.config import Settings
from ma_ray.connections import (
    ONLINE_READ_PROFILE,
    AsyncRedisReader,
    RedisReader,
    cassandra_cluster,
    kafka_admin,
    kafka_consumer_config,
    kafka_producer_config,
    redis_client,
)
from tests.tcp_cut import TcpCut


def test_redis_round_trip_of_binary_values(services: Settings) -> None:
    client = redis_client(services)
    key = f"test:{uuid.uuid4().hex}"
    payload = bytes(range(256))
    try:
        client.set(key, payload, ex=60)
        assert client.get(key) == payload
        assert 0 < client.ttl(key) <= 60
    finally:
        client.delete(key)
        client.close()


def test_lean_mget_answers_as_the_clients_mget(services: Settings) -> None:
    client = redis_client(services)
    keys = [f"test:{uuid.uuid4().hex}" for _ in range(5)]
    try:
        client.mset({keys[0]: bytes(range(256)), keys[2]: b"", keys[4]: "é".encode()})
        reader = RedisReader(client)
        assert reader.mget(keys) == client.mget(keys) == [bytes(range(256)), None, b"", None, "é".encode()]
        assert reader.mget([keys[1]]) == [None]
        other_thread: list[list[bytes | None]] = []
        thread = threading.Thread(target=lambda: other_thread.append(reader.mget([keys[0]])))
        thread.start()
        thread.join(timeout=10)
        assert other_thread == [[bytes(range(256))]]
        reader.close()
        assert reader.mget([keys[4]]) == ["é".encode()]  # a closed reader's thread connects again
        reader.close()
    finally:
        client.delete(*keys)
        client.close()


def test_lean_mget_times_out_and_never_reads_a_late_reply_as_the_next_ones(services: Settings) -> None:
    """A hung server: the read fails at the client's timeout; once the late reply arrives, the next read on the
    same client still answers its own keys (the timed-out connection was dropped, not reused)."""
    import redis

    cut = TcpCut(services.redis.host_port[1])
    hung = services.replaced(redis_url=f"redis://127.0.0.1:{cut.port}/0")
    client, direct = redis_client(hung, timeout_s=0.2, retries=0), redis_client(services)
    first, second = f"test:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}"
    direct.mset({first: b"first", second: b"second"})
    try:
        reader = RedisReader(client)
        assert reader.mget([first]) == [b"first"]
        cut.stall()
        try:
            reader.mget([first])
            raise AssertionError("a hung server's read returned")
        except redis.TimeoutError:
            pass
        finally:
            cut.resume()
        assert reader.mget([second]) == [b"second"]
    finally:
        direct.delete(first, second)
        client.close()
        direct.close()
        cut.cut()


def test_awaited_mget_answers_as_the_clients_mget_on_any_loop(services: Settings) -> None:
    """Reads in flight together on one loop each get their own answer; another loop opens its own connections."""
    client = redis_client(services)
    keys = [f"test:{uuid.uuid4().hex}" for _ in range(5)]
    try:
        client.mset({keys[0]: bytes(range(256)), keys[2]: b"", keys[4]: "é".encode()})
        reader = AsyncRedisReader(services.redis.url, timeout_s=1.0)

        async def together() -> list[list[bytes | None]]:
            return list(await asyncio.gather(reader.mget(keys), *(reader.mget([key]) for key in keys)))

        expected = client.mget(keys)
        assert expected == [bytes(range(256)), None, b"", None, "é".encode()]
        assert asyncio.run(together()) == [expected, *([value] for value in expected)]
        assert asyncio.run(reader.mget([keys[4]])) == ["é".encode()]  # a new loop: a new connection
        reader.close()
    finally:
        client.delete(*keys)
        client.close()


def test_awaited_mget_times_out_without_holding_the_loop_and_never_reads_a_late_reply(services: Settings) -> None:
    """A hung server: the read fails at the deadline while the loop goes on with other work; once the late reply
    arrives, the next read still answers its own keys (the timed-out connection was dropped, not reused)."""
    import redis

    cut = TcpCut(services.redis.host_port[1])
    direct = redis_client(services)
    first, second = f"test:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}"
    direct.mset({first: b"first", second: b"second"})
    reader = AsyncRedisReader(f"redis://127.0.0.1:{cut.port}/0", timeout_s=0.3)

    async def hung_read_and_ticks() -> tuple[BaseException | list[bytes | None], int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        try:
            outcome = await reader.mget([first])
        except BaseException as error:
            outcome = error
        ticker.cancel()
        return outcome, ticks

    try:
        assert asyncio.run(reader.mget([first])) == [b"first"]
        cut.stall()
        try:
            outcome, ticks = asyncio.run(hung_read_and_ticks())
        finally:
            cut.resume()
        assert isinstance(outcome, redis.TimeoutError), outcome
        assert ticks > 0  # the loop ran on while the read waited (a blocking read would leave it none)
        assert asyncio.run(reader.mget([second])) == [b"second"]
    finally:
        reader.close()
        direct.delete(first, second)
        direct.close()
        cut.cut()


def test_cassandra_prepared_round_trip_at_local_quorum(services: Settings) -> None:
    cluster = cassandra_cluster(services)
    session = cluster.connect()
    keyspace = f"test_{uuid.uuid4().hex[:8]}"
    try:
        session.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication = "
            f"{{'class': 'NetworkTopologyStrategy', '{services.cassandra.local_dc}': 1}}"
        )
        session.execute(
            f"CREATE TABLE {keyspace}.driver_features (driver_id text, feature_timestamp timestamp, "
            "trip_count_7d int, PRIMARY KEY ((driver_id), feature_timestamp)) "
            "WITH CLUSTERING ORDER BY (feature_timestamp DESC)"
        )
        insert = session.prepare(
            f"INSERT INTO {keyspace}.driver_features (driver_id, feature_timestamp, trip_count_7d) VALUES (?, ?, ?)"
        )
        select = session.prepare(f"SELECT trip_count_7d FROM {keyspace}.driver_features WHERE driver_id = ? LIMIT 1")
        select.is_idempotent = True
        session.execute(insert, ("drv_1", 1_000, 3))
        session.execute(insert, ("drv_1", 2_000, 5))
        row = session.execute(select, ("drv_1",), execution_profile=ONLINE_READ_PROFILE).one()
        assert row.trip_count_7d == 5  # newest first: clustering order DESC
        level = session.execute(SimpleStatement("SELECT now() FROM system.local")).response_future.message
        assert level.consistency_level == 6  # LOCAL_QUORUM from the settings
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        cluster.shutdown()


def test_kafka_produce_consume_commit(services: Settings) -> None:
    topic = f"test-{uuid.uuid4().hex[:8]}"
    admin = kafka_admin(services)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=30)
    producer = Producer(kafka_producer_config(services))
    for i in range(10):
        producer.produce(topic, key=f"drv_{i % 3}".encode(), value=f"event-{i}".encode())
    assert producer.flush(10) == 0
    consumer = Consumer(kafka_consumer_config(services, group_id=f"g-{topic}"))
    consumer.subscribe([topic])
    seen: list[bytes] = []
    try:
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                seen.append(message.value())
            if len(seen) == 10:
                break
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    finally:
        consumer.close()
        admin.delete_topics([topic])
    assert sorted(seen) == sorted(f"event-{i}".encode() for i in range(10))
    assert sum(tp.offset for tp in committed if tp.offset >= 0) == 10  # -1001: a partition with no events
