"""Alias-change broadcast: every change is published; subscribed replicas invalidate their caches and
acknowledge; ``wait_for_propagation`` returns once every replica subscribed at publish time has acknowledged,
or at its timeout with the list of laggards (the seed's "wait for propagation" for critical updates).

Two buses share this protocol: `InProcessAliasBus` (embedded; one process, a thread per subscriber) and
`RedisAliasBus` (production; Redis pub/sub, replicas registered with a heartbeat, acknowledgements in sets).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    import redis

    from ma_ray.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AliasChange:
    model: str
    alias: str
    version: int | None
    seq: int
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def key(self) -> str:
        return f"{self.model}:{self.alias}"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> AliasChange:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class Propagation:
    event_id: str
    acknowledged: list[str]
    laggards: list[str]

    @property
    def complete(self) -> bool:
        return not self.laggards


Handler = Callable[[AliasChange], None]


class Subscription(Protocol):
    replica_id: str

    def close(self) -> None: ...


class AliasBus(Protocol):
    def publish(self, change: AliasChange) -> None:
        """Send the change to every subscriber; remembers who they were, for `wait_for_propagation`."""

    def subscribe(self, replica_id: str, handler: Handler) -> Subscription:
        """Call ``handler`` for every change (in a background thread) and acknowledge it after it returns.
        Returns once the subscription is live: no change published later is missed."""

    def wait_for_propagation(self, event_id: str, timeout_s: float = 5.0) -> Propagation: ...

    def close(self) -> None: ...


# ---- embedded -----------------------------------------------------------------------------------------------
class _LocalSubscription:
    def __init__(self, bus: InProcessAliasBus, replica_id: str, handler: Handler) -> None:
        self.replica_id, self._bus, self._handler = replica_id, bus, handler
        self._queue: queue.SimpleQueue[AliasChange | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"alias-sub-{replica_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (change := self._queue.get()) is not None:
            try:
                self._handler(change)
            except Exception:
                log.exception("alias change handler of %s failed; not acknowledged", self.replica_id)
                continue
            self._bus._ack(change.event_id, self.replica_id)

    def close(self) -> None:
        self._bus._unsubscribe(self)
        self._queue.put(None)


class InProcessAliasBus:
    """All subscribers in this process. Acknowledgements are kept for the last ``keep`` events."""

    def __init__(self, keep: int = 10_000) -> None:
        self._subscribers: dict[str, _LocalSubscription] = {}
        self._expected: dict[str, frozenset[str]] = {}
        self._acks: dict[str, set[str]] = {}
        self._keep = keep
        self._cond = threading.Condition()

    def publish(self, change: AliasChange) -> None:
        with self._cond:
            subscribers = list(self._subscribers.values())
            self._expected[change.event_id] = frozenset(s.replica_id for s in subscribers)
            self._acks[change.event_id] = set()
            while len(self._expected) > self._keep:
                oldest = next(iter(self._expected))
                self._expected.pop(oldest)
                self._acks.pop(oldest, None)
        for subscriber in subscribers:
            subscriber._queue.put(change)

    def subscribe(self, replica_id: str, handler: Handler) -> _LocalSubscription:
        with self._cond:
            if replica_id in self._subscribers:
                raise ValueError(f"replica '{replica_id}' is subscribed already")
            subscription = _LocalSubscription(self, replica_id, handler)
            self._subscribers[replica_id] = subscription
            return subscription

    def _unsubscribe(self, subscription: _LocalSubscription) -> None:
        with self._cond:
            self._subscribers.pop(subscription.replica_id, None)
            self._cond.notify_all()

    def _ack(self, event_id: str, replica_id: str) -> None:
        with self._cond:
            if event_id in self._acks:
                self._acks[event_id].add(replica_id)
                self._cond.notify_all()

    def wait_for_propagation(self, event_id: str, timeout_s: float = 5.0) -> Propagation:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if event_id not in self._expected:
                raise KeyError(f"no alias change {event_id} was published on this bus (or it is too old)")
            while True:
                # A replica that unsubscribed meanwhile is no longer waited for.
                expected = self._expected[event_id] & (self._subscribers.keys() | self._acks[event_id])
                missing = expected - self._acks[event_id]
                left = deadline - time.monotonic()
                if not missing or left <= 0:
                    return Propagation(event_id, sorted(self._acks[event_id] & expected), sorted(missing))
                self._cond.wait(left)

    def close(self) -> None:
        for subscription in list(self._subscribers.values()):
            subscription.close()


# ---- production: Redis pub/sub --------------------------------------------------------------------------------
class _RedisSubscription:
    def __init__(self, bus: RedisAliasBus, replica_id: str, handler: Handler) -> None:
        self.replica_id, self._bus, self._handler = replica_id, bus, handler
        self._stop = threading.Event()
        self._pubsub = bus._client.pubsub()
        self._pubsub.subscribe(bus.channel)
        deadline = time.monotonic() + 5
        while True:  # Redis confirms the subscription before any message of the channel reaches it
            message = self._pubsub.get_message(timeout=0.5)
            if message and message["type"] == "subscribe":
                break
            if time.monotonic() > deadline:
                self._pubsub.close()
                raise TimeoutError(f"Redis did not confirm the subscription to {bus.channel}")
        self._heartbeat()
        self._thread = threading.Thread(target=self._run, name=f"alias-sub-{replica_id}", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        self._bus._client.zadd(self._bus.replicas_key, {self.replica_id: time.time() + self._bus.replica_ttl_s})
        self._next_beat = time.monotonic() + self._bus.replica_ttl_s / 3

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._pubsub.get_message(timeout=0.2)
                if message and message["type"] == "message":
                    self._deliver(AliasChange.from_json(message["data"]))
                if time.monotonic() >= self._next_beat:
                    self._heartbeat()
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("alias subscription %s: Redis error; retrying", self.replica_id)
                self._stop.wait(0.5)

    def _deliver(self, change: AliasChange) -> None:
        try:
            self._handler(change)
        except Exception:
            log.exception("alias change handler of %s failed; not acknowledged", self.replica_id)
            return
        key = self._bus._ack_key(change.event_id)
        pipe = self._bus._client.pipeline(transaction=False)
        pipe.sadd(key, self.replica_id)
        pipe.expire(key, self._bus.ack_ttl_s)
        pipe.execute()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._bus._client.zrem(self._bus.replicas_key, self.replica_id)
        self._pubsub.close()


class RedisAliasBus:
    """Changes go out on one pub/sub channel. Each replica registers in a sorted set scored by its heartbeat
    deadline (a crashed replica drops out after ``replica_ttl_s``); publishing snapshots the live replicas into
    an "expected" set, and each replica adds itself to the event's "acked" set after invalidating."""

    def __init__(
        self, client: redis.Redis, namespace: str = "ma_ray:gallery", replica_ttl_s: float = 10.0, ack_ttl_s: int = 300
    ) -> None:
        self._client = client
        self.namespace = namespace
        self.channel = f"{namespace}:alias_changes"
        self.replicas_key = f"{namespace}:replicas"
        self.replica_ttl_s, self.ack_ttl_s = replica_ttl_s, ack_ttl_s
        self._subscriptions: list[_RedisSubscription] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisAliasBus:
        """On the settings' Redis, in a namespace of the settings' keyspace (one Redis may serve several)."""
        from ma_ray.connections import redis_client

        return cls(redis_client(settings), namespace=f"{settings.cassandra.keyspace}:gallery")

    def _ack_key(self, event_id: str) -> str:
        return f"{self.namespace}:acked:{event_id}"

    def _expected_key(self, event_id: str) -> str:
        return f"{self.namespace}:expected:{event_id}"

    def live_replicas(self) -> list[str]:
        members = cast("list[bytes]", self._client.zrangebyscore(self.replicas_key, time.time(), "+inf"))
        return sorted(m.decode() for m in members)

    def publish(self, change: AliasChange) -> None:
        replicas = self.live_replicas()
        pipe = self._client.pipeline(transaction=False)
        if replicas:
            pipe.sadd(self._expected_key(change.event_id), *replicas)
            pipe.expire(self._expected_key(change.event_id), self.ack_ttl_s)
        pipe.publish(self.channel, change.to_json())
        pipe.execute()

    def subscribe(self, replica_id: str, handler: Handler) -> _RedisSubscription:
        subscription = _RedisSubscription(self, replica_id, handler)
        self._subscriptions.append(subscription)
        return subscription

    def wait_for_propagation(self, event_id: str, timeout_s: float = 5.0) -> Propagation:
        deadline, pause = time.monotonic() + timeout_s, 0.001
        expected = self._member_names(self._expected_key(event_id))
        while True:
            acked = self._member_names(self._ack_key(event_id))
            missing = expected - acked
            if missing and time.monotonic() < deadline:
                missing -= set(self._departed(missing))
            if not missing or time.monotonic() >= deadline:
                return Propagation(event_id, sorted(acked & expected), sorted(missing))
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.02)

    def _member_names(self, key: str) -> set[str]:
        members = cast("set[bytes]", self._client.smembers(key))  # the client answers bytes (no decode_responses)
        return {m.decode() for m in members}

    def _departed(self, replicas: set[str]) -> list[str]:
        """Replicas that unsubscribed or whose heartbeat lapsed: not waited for."""
        now = time.time()
        scores = self._client.zmscore(self.replicas_key, sorted(replicas))
        return [r for r, s in zip(sorted(replicas), scores, strict=True) if s is None or s < now]

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
