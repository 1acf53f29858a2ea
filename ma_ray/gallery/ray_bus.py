"""The embedded alias-change bus across processes: one named Ray actor (the hub) that every process of the
cluster finds by name. Subscribers long-poll it from a background thread, handle each change, acknowledge it.

Same protocol as `InProcessAliasBus` and `RedisAliasBus`; used when ``alias_broadcast`` is ``ray``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

import ray

from ma_ray.config import Settings
from ma_ray.gallery.broadcast import AliasBus, AliasChange, Handler, InProcessAliasBus, Propagation

log = logging.getLogger(__name__)
HUB_NAME = "ma_ray_alias_hub"
HUB_NAMESPACE = "ma_ray"


# A live subscriber polls at least every second; one silent for longer than this died without unsubscribing
# (a replica that was killed) and is no longer waited for.
STALE_AFTER_S = 5.0


@ray.remote(num_cpus=0, max_restarts=-1)
class AliasHub:
    """Queues per subscribed replica and acknowledgements per event (the last ``keep`` events)."""

    def __init__(self, keep: int = 10_000) -> None:
        self.queues: dict[str, list[str]] = {}
        self.wakeups: dict[str, asyncio.Event] = {}
        self.last_seen: dict[str, float] = {}
        self.expected: OrderedDict[str, frozenset[str]] = OrderedDict()
        self.acks: dict[str, set[str]] = {}
        self.keep = keep

    def register(self, replica_id: str) -> bool:
        self._forget_silent()
        if replica_id in self.queues:
            return False
        self.queues[replica_id] = []
        self.wakeups[replica_id] = asyncio.Event()
        self.last_seen[replica_id] = time.monotonic()
        return True

    def unregister(self, replica_id: str) -> None:
        self.queues.pop(replica_id, None)
        self.last_seen.pop(replica_id, None)
        wakeup = self.wakeups.pop(replica_id, None)
        if wakeup is not None:
            wakeup.set()

    def _forget_silent(self) -> None:
        cutoff = time.monotonic() - STALE_AFTER_S
        for replica_id in [r for r, seen in self.last_seen.items() if seen < cutoff]:
            self.unregister(replica_id)

    def publish(self, event_id: str, change_json: str) -> None:
        self._forget_silent()
        self.expected[event_id] = frozenset(self.queues)
        self.acks[event_id] = set()
        while len(self.expected) > self.keep:
            oldest, _ = self.expected.popitem(last=False)
            self.acks.pop(oldest, None)
        for replica_id, queue in self.queues.items():
            queue.append(change_json)
            self.wakeups[replica_id].set()

    async def poll(self, replica_id: str, timeout_s: float) -> list[str] | None:
        """Pending changes of a replica (waiting up to ``timeout_s``); None once it is unregistered."""
        if replica_id not in self.queues:
            return None
        self.last_seen[replica_id] = time.monotonic() + timeout_s  # alive for the whole long poll
        if not self.queues[replica_id]:
            wakeup = self.wakeups[replica_id]
            wakeup.clear()
            try:
                await asyncio.wait_for(wakeup.wait(), timeout_s)
            except TimeoutError:
                return []
        if replica_id not in self.queues:
            return None
        pending, self.queues[replica_id] = self.queues[replica_id], []
        return pending

    def ack(self, event_id: str, replica_id: str) -> None:
        if event_id in self.acks:
            self.acks[event_id].add(replica_id)

    def status(self, event_id: str) -> tuple[list[str], list[str]] | None:
        """(acknowledged, still expected) of an event; replicas that left are no longer expected."""
        if event_id not in self.expected:
            return None
        self._forget_silent()
        acked = self.acks[event_id]
        expected = self.expected[event_id] & (self.queues.keys() | acked)
        return sorted(acked & expected), sorted(expected - acked)


# The hub's handle is used untyped: Ray's ActorHandle answers every attribute (its methods) as Never, and mypy keeps
# a decorated class's own type, without the ActorClass.options that @ray.remote gives it.
def _hub() -> Any:
    return AliasHub.options(  # type: ignore[attr-defined]
        name=HUB_NAME, namespace=HUB_NAMESPACE, get_if_exists=True, lifetime="detached"
    ).remote()


class _RaySubscription:
    def __init__(self, hub: Any, replica_id: str, handler: Handler) -> None:
        self.replica_id, self._hub, self._handler = replica_id, hub, handler
        if not ray.get(hub.register.remote(replica_id)):
            raise ValueError(f"replica '{replica_id}' is subscribed already")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"alias-sub-{replica_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pending = ray.get(self._hub.poll.remote(self.replica_id, 1.0))
            except Exception:  # the hub restarts after a crash: keep polling
                log.exception("alias subscription %s: hub unreachable; retrying", self.replica_id)
                self._stop.wait(0.5)
                continue
            if pending is None:
                return
            for raw in pending:
                self._deliver(AliasChange.from_json(raw))

    def _deliver(self, change: AliasChange) -> None:
        try:
            self._handler(change)
        except Exception:
            log.exception("alias change handler of %s failed; not acknowledged", self.replica_id)
            return
        self._hub.ack.remote(change.event_id, self.replica_id)

    def close(self) -> None:
        self._stop.set()
        ray.get(self._hub.unregister.remote(self.replica_id))


class RayAliasBus:
    """Every process of one Ray cluster shares the hub actor; needs Ray to be initialized."""

    def __init__(self) -> None:
        if not ray.is_initialized():
            raise RuntimeError("the ray alias bus needs a running Ray (ray.init or MA_RAY_RAY_ADDRESS)")
        self._hub = _hub()
        self._subscriptions: list[_RaySubscription] = []

    def publish(self, change: AliasChange) -> None:
        ray.get(self._hub.publish.remote(change.event_id, change.to_json()))

    def subscribe(self, replica_id: str, handler: Handler) -> _RaySubscription:
        subscription = _RaySubscription(self._hub, replica_id, handler)
        self._subscriptions.append(subscription)
        return subscription

    def wait_for_propagation(self, event_id: str, timeout_s: float = 5.0) -> Propagation:
        deadline = time.monotonic() + timeout_s
        while True:
            status = ray.get(self._hub.status.remote(event_id))
            if status is None:
                raise KeyError(f"no alias change {event_id} was published on this bus (or it is too old)")
            acknowledged, missing = status
            if not missing or time.monotonic() >= deadline:
                return Propagation(event_id, acknowledged, missing)
            time.sleep(0.01)

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()


def open_ray_alias_bus(settings: Settings) -> AliasBus:
    """The embedded bus: the Ray cluster's hub actor, or an in-process bus where no Ray runs (a CLI call)."""
    return RayAliasBus() if ray.is_initialized() else InProcessAliasBus()
