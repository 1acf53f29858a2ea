"""Alias-change broadcast over real Redis pub/sub (and the embedded bus): delivery to every subscriber,
wait_for_propagation returning when all acknowledged or listing the laggards, caches invalidated."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from ma_ray.config import Settings
from ma_ray.connections import redis_client
from ma_ray.gallery import AliasBus, AliasCache, AliasChange, InProcessAliasBus, RedisAliasBus
from ma_ray.gallery.ray_bus import RayAliasBus


@pytest.fixture(params=["redis", "in_process", "ray"])
def bus(request: pytest.FixtureRequest) -> Iterator[AliasBus]:
    if request.param == "in_process":
        made: AliasBus = InProcessAliasBus()
    elif request.param == "ray":
        request.getfixturevalue("ray_cluster")
        made = RayAliasBus()
    else:
        settings: Settings = request.getfixturevalue("services")
        made = RedisAliasBus(redis_client(settings), namespace=f"test_gallery:{uuid.uuid4().hex[:8]}")
    yield made
    made.close()


def change(version: int = 2) -> AliasChange:
    return AliasChange("eta", "production", version, seq=version)


def test_every_subscriber_receives_and_acknowledges(bus: AliasBus) -> None:
    received: dict[str, list[AliasChange]] = {f"r{i}": [] for i in range(3)}
    for replica, inbox in received.items():
        bus.subscribe(replica, inbox.append)
    sent = change()
    bus.publish(sent)
    result = bus.wait_for_propagation(sent.event_id, timeout_s=10)
    assert result.complete
    assert result.acknowledged == ["r0", "r1", "r2"]
    assert all(inbox == [sent] for inbox in received.values())


def test_a_laggard_is_listed_when_the_wait_times_out(bus: AliasBus) -> None:
    release = threading.Event()
    bus.subscribe("fast", lambda c: None)
    bus.subscribe("stuck", lambda c: release.wait(30))
    sent = change()
    bus.publish(sent)
    result = bus.wait_for_propagation(sent.event_id, timeout_s=0.3)
    release.set()
    assert not result.complete
    assert (result.acknowledged, result.laggards) == (["fast"], ["stuck"])
    assert bus.wait_for_propagation(sent.event_id, timeout_s=10).complete  # it catches up


def test_a_failing_handler_does_not_acknowledge(bus: AliasBus) -> None:
    def broken(c: AliasChange) -> None:
        raise RuntimeError("cache gone")

    bus.subscribe("broken", broken)
    sent = change()
    bus.publish(sent)
    assert bus.wait_for_propagation(sent.event_id, timeout_s=0.3).laggards == ["broken"]


def test_a_replica_that_leaves_is_not_waited_for(bus: AliasBus) -> None:
    subscription = bus.subscribe("leaving", lambda c: threading.Event().wait(30))
    bus.subscribe("staying", lambda c: None)
    sent = change()
    bus.publish(sent)
    subscription.close()
    result = bus.wait_for_propagation(sent.event_id, timeout_s=10)
    assert result.complete
    assert result.acknowledged == ["staying"]


def test_with_no_subscribers_propagation_is_immediate(bus: AliasBus) -> None:
    sent = change()
    bus.publish(sent)
    assert bus.wait_for_propagation(sent.event_id, timeout_s=0.1).complete


def test_the_broadcast_invalidates_alias_caches(bus: AliasBus) -> None:
    current = {"version": 1}
    caches = [AliasCache(lambda m, a: current["version"], ttl_s=3600) for _ in range(3)]
    for i, cache in enumerate(caches):
        bus.subscribe(f"serving-{i}", cache.on_change)
    assert [c.get("eta", "production") for c in caches] == [1, 1, 1]
    current["version"] = 2
    assert [c.get("eta", "production") for c in caches] == [1, 1, 1]  # cached, within its TTL
    sent = change(2)
    bus.publish(sent)
    assert bus.wait_for_propagation(sent.event_id, timeout_s=10).complete
    assert [c.get("eta", "production") for c in caches] == [2, 2, 2]


def test_the_ray_bus_reaches_other_processes(ray_cluster: str) -> None:
    import ray

    @ray.remote(num_cpus=0)
    class Replica:
        def __init__(self) -> None:
            self.seen: list[int | None] = []
            self.subscription = RayAliasBus().subscribe(f"actor-{uuid.uuid4().hex[:6]}", self._on_change)

        def _on_change(self, change: AliasChange) -> None:
            self.seen.append(change.version)

        def seen_versions(self) -> list[int | None]:
            return self.seen

        def leave(self) -> None:
            self.subscription.close()

    replicas = [Replica.remote() for _ in range(2)]
    ray.get([r.seen_versions.remote() for r in replicas])  # subscribed once constructed
    bus = RayAliasBus()
    sent = change(7)
    bus.publish(sent)
    result = bus.wait_for_propagation(sent.event_id, timeout_s=20)
    assert result.complete and len(result.acknowledged) == 2
    assert ray.get([r.seen_versions.remote() for r in replicas]) == [[7], [7]]
    ray.get([r.leave.remote() for r in replicas])


def test_the_ray_bus_stops_waiting_for_a_replica_that_died(ray_cluster: str) -> None:
    import ray

    from ma_ray.gallery import ray_bus

    @ray.remote(num_cpus=0)
    class Doomed:
        def __init__(self, replica_id: str) -> None:
            self.subscription = RayAliasBus().subscribe(replica_id, lambda change: None)

        def ready(self) -> bool:
            return True

    doomed = Doomed.remote(f"doomed-{uuid.uuid4().hex[:6]}")
    ray.get(doomed.ready.remote())
    ray.kill(doomed)  # gone without unsubscribing
    bus = RayAliasBus()
    bus.subscribe(f"alive-{uuid.uuid4().hex[:6]}", lambda change: None)
    sent = change(3)
    bus.publish(sent)
    deadline = ray_bus.STALE_AFTER_S + 10
    result = bus.wait_for_propagation(sent.event_id, timeout_s=deadline)
    bus.close()
    assert result.complete and len(result.acknowledged) == 1
