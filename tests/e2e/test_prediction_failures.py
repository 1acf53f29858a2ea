"""The prediction service under the seed's serving failure modes, on Ray Serve through HTTP:

- a tier-1 replica (it takes HTTP itself) is killed under load: Serve replaces it, only the request it was
  answering fails, every later one is answered;
- a tier-2 pool replica is killed under load: the tier-1 replica that called it sends the request again, the
  client sees no failed request;
- a version fails to load: the version that served the alias before keeps serving, the failure is reported
  (response warning, 503 for the pinned version);
- the feature store goes away (Cassandra cut off by a proxy, Redis unreachable): defaults are served, the
  circuit breaker opens, predictions continue with ``degraded`` set.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import ray
import requests
from ray import serve

from apps.prediction import build_app
from ma_ray.config import Settings, load_settings
from ma_ray.connections import cassandra_cluster
from ma_ray.gallery import Gallery
from ma_ray.gallery.artifacts import MANIFEST
from tests.e2e.test_prediction import REQUEST_TS, SIGNATURE, expected, train
from tests.ports import free_port
from tests.rideshare_data import load_sample

APP, OUTAGE_APP = "prediction-failures", "prediction-store-outage"
ONLY_TIER1 = {"ModelPool": 0, "GpuModelPool": 0}  # the unused pools start no replica


class TcpProxy:
    """A TCP relay in front of a real server, which the test can cut: ``close()`` is the server going away
    for the clients that reach it through here (the shared server itself is untouched)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for end in (source, target):
            end.close()

    def close(self) -> None:
        for sock in self.sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@dataclass
class Service:
    url: str
    outage_url: str
    gallery: Gallery
    cassandra: TcpProxy
    snapshot: object
    boosters: dict[int, object] = field(default_factory=dict)

    def body(self, drivers: int = 2) -> dict:
        return {"rows": [{"driver_id": d, "request_ts": REQUEST_TS} for d in self.snapshot.index[:drivers]]}


@pytest.fixture(scope="module")
def service(
    ray_cluster: str, raw_uri: str, services: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """eta (tier 1) version 1 in production, version 2 with a corrupted artifact; two tier-1 pool replicas.
    A second app (one tier-1 replica) serves eta with its features in the real Cassandra (a keyspace of its
    own), reached through a proxy the test can cut, and Redis pointed at a port nothing listens on."""
    overrides = {"state_dir": tmp_path_factory.mktemp("prediction_failures")}
    snapshot = load_sample(load_settings(**overrides), raw_uri, batch_rows=5000)
    gallery = Gallery.from_settings(load_settings(**overrides))
    gallery.register_model(name="eta", owner="maps", tier=1, framework="xgboost")
    boosters = {1: train(0), 2: train(1)}
    for booster in boosters.values():
        gallery.log_model("eta", booster, signature=SIGNATURE)
    for path in Path(gallery.version("eta", 2).artifact_uri).rglob("*"):
        if path.is_file() and path.name != MANIFEST:
            path.write_bytes(b"not a model")
    gallery.set_alias("eta", "production", 1)
    gallery.register_model(name="eta_lower", owner="maps", tier=2, framework="xgboost")  # served by ModelPool
    gallery.log_model("eta_lower", boosters[1], signature=SIGNATURE)
    gallery.set_alias("eta_lower", "production", 1)
    keyspace = f"ma_ray_outage_{uuid.uuid4().hex[:8]}"
    in_cassandra = {
        **overrides,
        "online_store": "cassandra",
        "cassandra_hosts": services.cassandra.hosts,
        "cassandra_port": services.cassandra.port,
        "cassandra_keyspace": keyspace,
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
    }
    load_sample(load_settings(**in_cassandra), raw_uri, batch_rows=5000)
    proxy = TcpProxy((services.cassandra.hosts[0], services.cassandra.port))
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    # A node cache of its own: a node that fetched version 2's bytes (verified) before they were corrupted would
    # rightly keep serving them.
    artifacts = str(tmp_path_factory.mktemp("node_artifacts"))
    serving = {"replicas": {**ONLY_TIER1, "ModelPoolTier1": 2, "ModelPool": 2}, "artifact_cache_dir": artifacts}
    serve.run(build_app({"settings": overrides, "serving": serving}), name=APP, route_prefix="/failures")
    outage = {**in_cassandra, "cassandra_port": proxy.port, "l1_cache_ttl_s": 1e-6}  # every read reaches the store
    # One replica: one set of breakers to watch.
    outage_serving = {"replicas": {**ONLY_TIER1, "ModelPoolTier1": 1}, "artifact_cache_dir": artifacts}
    serve.run(build_app({"settings": outage, "serving": outage_serving}), name=OUTAGE_APP, route_prefix="/outage")
    base = f"http://127.0.0.1:{port}"
    try:
        yield Service(f"{base}/failures/v1/models", f"{base}/outage/v1/models", gallery, proxy, snapshot, boosters)
    finally:
        serve.delete(OUTAGE_APP)
        serve.delete(APP)
        serve.shutdown()
        gallery.close()
        proxy.close()
        cluster = cassandra_cluster(services)
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}_online")
        cluster.shutdown()


@dataclass(frozen=True)
class Failure:
    started: float  # monotonic seconds
    finished: float
    status: int  # 0: the connection dropped
    text: str


class RequestLoop(threading.Thread):
    """Sends predictions one after another until stopped; keeps every status code it got, and when each failure
    was sent and answered."""

    def __init__(self, url: str, body: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.statuses: list[int] = []
        self.failures: list[Failure] = []
        self.stop = threading.Event()

    @property
    def errors(self) -> list[str]:
        return [failure.text for failure in self.failures]

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                response = requests.post(self.url, json=self.body, timeout=60)
                status, text = response.status_code, response.text[:300]
            except requests.RequestException as error:  # a dropped connection is a failed request too
                status, text = 0, repr(error)[:300]
            self.statuses.append(status)
            if status != 200:
                self.failures.append(Failure(started, time.monotonic(), status, text))

    def wait_for(self, count: int, timeout_s: float = 120.0) -> None:
        target, deadline = len(self.statuses) + count, time.monotonic() + timeout_s
        while len(self.statuses) < target:
            assert self.is_alive(), f"the request loop stopped: {self.errors[-1:]}"
            assert time.monotonic() < deadline, f"{len(self.statuses)} answers, {target} wanted within {timeout_s:.0f}s"
            self.stop.wait(0.05)


def pool_replicas(deployment: str = "ModelPoolTier1") -> dict[str, dict]:
    """Every live replica's state of a pool deployment, by actor name (asked until both replicas have answered)."""
    handle = serve.get_deployment_handle(deployment, APP)
    states: dict[str, dict] = {}
    for _ in range(50):
        state = handle.resident.remote().result(timeout_s=60)
        states[state["actor_name"]] = state
        if len(states) == 2:
            break
    return states


@dataclass
class Death:
    """When a replica was killed and when its process was gone (monotonic seconds): ``ray.kill`` returns before the
    process exits, and until it does the replica may still accept requests (under HAProxy it takes HTTP itself)."""

    killed_at: float
    exited_at: float

    def overlaps(self, failure: Failure) -> bool:
        return failure.started <= self.exited_at and failure.finished >= self.killed_at


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def kill(victim: str) -> Death:
    """Kill ``victim`` (an actor of this machine's cluster) and wait until its process has exited."""
    actor = ray.get_actor(victim, namespace="serve")
    pid = ray.get(actor.__ray_call__.remote(lambda _: os.getpid()), timeout=60)
    killed_at = time.monotonic()
    ray.kill(actor, no_restart=True)
    deadline = killed_at + 60
    while _process_exists(pid):
        assert time.monotonic() < deadline, f"{victim} (pid {pid}) still running 60 s after ray.kill"
        time.sleep(0.002)
    return Death(killed_at, time.monotonic())


def kill_under_load(loop: RequestLoop, deployment: str, victim: str, before: dict[str, dict]) -> Death:
    """Kill ``victim`` while ``loop`` sends requests, wait until Serve has replaced it, then for ten more answers
    and stop the loop."""
    death = kill(victim)
    replaced, deadline = False, time.monotonic() + 180
    while not replaced:
        assert time.monotonic() < deadline, (
            f"{victim} not replaced within 180s; replicas {list(pool_replicas(deployment))}"
        )
        loop.wait_for(5)
        replaced = len(set(pool_replicas(deployment)) - set(before)) == 1
    loop.wait_for(10)
    loop.stop.set()
    loop.join(timeout=120)
    return death


def test_killed_pool_replica_fails_only_its_request_in_flight_and_is_replaced(service: Service) -> None:
    """A replica that dies takes the request it was answering with it (Serve's proxy re-sends a request only
    while no replica has accepted it: `ray.serve._private.router`; it answers 500, and HAProxy, where the replica
    holds the client's connection, drops the connection); every request sent after the death is answered, and the
    replacement loads its EAGER models before it takes traffic."""
    before = pool_replicas()
    assert len(before) == 2 and all("eta:1" in s["models"] for s in before.values())
    loop = RequestLoop(f"{service.url}/eta:predict", service.body())
    loop.start()
    loop.wait_for(5)
    victim = next(iter(before))
    death = kill_under_load(loop, "ModelPoolTier1", victim, before)
    assert all(map(death.overlaps, loop.failures)), f"requests sent after the exit failed: {death}, {loop.failures}"
    assert len(loop.failures) <= 1 and {f.status for f in loop.failures} <= {0, 500}, loop.failures  # one client
    assert loop.statuses.count(200) >= len(loop.statuses) - 1
    after = pool_replicas()
    assert victim not in after and all("eta:1" in s["models"] for s in after.values())  # EAGER on the new one too


def test_killed_lower_tier_pool_replica_costs_a_retry_not_an_error(service: Service) -> None:
    """A tier-2 model is answered by a ModelPool replica behind the tier-1 replica that took the request; when that
    pool replica dies mid-request, the tier-1 replica sends the request again and Serve routes it to a live one."""
    loop = RequestLoop(f"{service.url}/eta_lower:predict", service.body())
    loop.start()
    loop.wait_for(5)
    before = pool_replicas("ModelPool")
    holders = [name for name, state in before.items() if "eta_lower:1" in state["models"]]
    assert len(before) == 2 and holders, before
    kill_under_load(loop, "ModelPool", holders[0], before)
    assert loop.failures == [] and set(loop.statuses) == {200}


def test_version_that_fails_to_load_leaves_the_previous_one_serving(service: Service) -> None:
    url = f"{service.url}/eta:predict"
    first = requests.post(url, json=service.body(), timeout=60).json()
    assert first["version"] == 1
    service.gallery.set_alias("eta", "production", 2)
    try:
        # Every tier-1 replica answers some of them, the one that replaced a killed replica too (it may never have
        # served eta before the flip: it falls back to the version Gallery's alias history had before it).
        answers = [requests.post(url, json=service.body(), timeout=60) for _ in range(20)]
        assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers if a.status_code != 200]
        served = answers[-1].json()
        assert {a.json()["version"] for a in answers} == {1} and "eta:2 failed to load" in served["warnings"][0]
        drivers = list(service.snapshot.index[:2])
        context = {"snapshot": service.snapshot, "boosters": service.boosters}
        assert served["predictions"] == pytest.approx([expected(context, d, 1) for d in drivers], rel=1e-5)
        pinned = requests.post(f"{url}?version=2", json=service.body(), timeout=60)
        assert pinned.status_code == 503 and "corrupted" in pinned.json()["detail"]
    finally:
        service.gallery.set_alias("eta", "production", 1)


def test_feature_store_outage_serves_defaults_opens_the_breaker_and_flags_degraded(service: Service) -> None:
    url = f"{service.outage_url}/eta:predict"
    body = {"rows": [{"driver_id": d, "request_ts": REQUEST_TS} for d in service.snapshot.index[:4]]}
    before = requests.post(url, json=body, timeout=60).json()
    assert before["degraded"] is False and len(set(before["predictions"])) > 1
    service.cassandra.close()
    answers = [requests.post(url, json=body, timeout=60) for _ in range(8)]
    assert [a.status_code for a in answers] == [200] * 8
    for answer in answers:
        predictions = answer.json()["predictions"]
        assert answer.json()["degraded"] and len(set(predictions)) == 1, answer.text  # the same defaults for all
    state = serve.get_deployment_handle("ModelPoolTier1", OUTAGE_APP).resident.remote().result(timeout_s=60)
    assert state["feature_breakers"]["cassandra"] == "open"
