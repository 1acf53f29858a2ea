"""A node dies under load on a multi-node Ray cluster; prints one JSON report for test_multinode.py.

    python -m tests.integration.multinode_scenario --state-dir DIR [--requests-after 60]

Ray's own ``ray.cluster_utils.Cluster`` starts a head and two worker nodes on this machine (real raylets, one
object store each). The feature-serving actors (`actors/feature_server.py`, SPREAD) and the HTTP feature API
(`apps/feature_api.py`, two Serve replicas, at most one per node) spread over them. Two clients drive load,
one over HTTP through Serve's proxy on the head, one calling the actors; then a worker node hosting a replica
is removed. A client retries a call that failed for lack of a live server (connection error, 5xx, actor died
or unavailable) and counts it as a retry; a request that never succeeds is a failure. The scenario then
waits until every actor and replica is alive again on the remaining nodes and reports what it saw.

It runs as its own process because a pytest process holds one Ray (the session's `ray_cluster`); give it its
own ``RAY_TMPDIR`` so that other processes' ``ray.init()`` never finds this cluster.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
import requests
from ray import serve
from ray.cluster_utils import Cluster

from actors.feature_server import FeatureServerPool
from apps.feature_api import FeatureAPI
from ma_ray.config import load_settings
from tests.polling import wait_for
from tests.ports import free_port
from tests.rideshare_data import load_sample, write_raw

POOL_SIZE = 3
REPLICAS = 2
APP = "features"
FEATURE = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"
RETRY_BUDGET_S = 60.0  # a request that cannot succeed within this is a failure
RECOVERY_BUDGET_S = 90.0
# Nodes report to the GCS every second and are declared dead after two missed checks; the defaults (3 s x 5)
# would only make the scenario slower, not different.
SYSTEM_CONFIG = {"health_check_period_ms": 1000, "health_check_failure_threshold": 2}


class LoadClient:
    """Calls ``attempt`` in a loop on its own thread; retries what ``retryable`` accepts, counts everything."""

    def __init__(self, name: str, attempt: Callable[[], None], retryable: Callable[[Exception], bool]) -> None:
        self.name, self.attempt, self.retryable = name, attempt, retryable
        self.counts: Counter[str] = Counter(requests=0, ok=0, retries=0, failures=0)
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.counts["requests"] += 1
            self.counts["ok" if self._one() else "failures"] += 1
            time.sleep(0.02)  # a steady load, not a busy loop: the three nodes share two cores

    def _one(self) -> bool:
        deadline, backoff = time.monotonic() + RETRY_BUDGET_S, 0.05
        while True:
            try:
                self.attempt()
                return True
            except Exception as error:  # any error: `retryable` decides
                self.errors[type(error).__name__] += 1
                if not self.retryable(error) or time.monotonic() > deadline:
                    return False
            self.counts["retries"] += 1
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)


class ServerError(Exception):
    """The HTTP proxy answered 5xx: the replica it picked was lost."""


def http_client(url: str, driver: str) -> LoadClient:
    session = requests.Session()
    body = {"rows": [{"driver_id": driver, "request_ts": "2026-01-07T08:15:00+00:00"}], "features": [FEATURE]}

    def attempt() -> None:
        response = session.post(url, json=body, timeout=10)
        if response.status_code >= 500:
            raise ServerError(f"{response.status_code}: {response.text[:200]}")
        response.raise_for_status()
        assert response.json()["rows"][0][FEATURE]["defaulted"] is False, response.text

    def retryable(error: Exception) -> bool:
        return isinstance(error, ServerError | requests.ConnectionError | requests.Timeout)

    return LoadClient("http", attempt, retryable)


def actor_client(pool: FeatureServerPool, driver: str) -> LoadClient:
    rows = [{"driver_id": driver}]

    def attempt() -> None:
        answer = ray.get(pool.get_features(rows, [FEATURE]), timeout=10)
        assert answer["rows"][0]["meta"][FEATURE]["defaulted"] is False, answer

    def retryable(error: Exception) -> bool:
        return isinstance(error, ray.exceptions.RayActorError | ray.exceptions.GetTimeoutError)

    return LoadClient("actors", attempt, retryable)


def placement() -> dict[str, Any]:
    """Alive nodes, and the nodes of the alive feature-serving actors and Serve replicas of the app."""
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    # Ray's state API (ray.util.state) needs the dashboard, which these nodes do without to spare the cores;
    # the GCS actor table it reads from is the same.
    actors = ray._private.state.actors().values()
    live = [a for a in actors if a["State"] == "ALIVE"]
    return {
        "alive_nodes": sorted(alive),
        "pool": sorted(a["Address"]["NodeID"] for a in live if a["ActorClassName"] == "FeatureServer"),
        "replicas": sorted(
            a["Address"]["NodeID"] for a in live if a["ActorClassName"].startswith(f"ServeReplica:{APP}:")
        ),
    }


def recovered(where: dict[str, Any]) -> bool:
    alive = set(where["alive_nodes"])
    running = serve.status().applications[APP].deployments["FeatureAPI"].replica_states.get("RUNNING", 0)
    return (
        len(where["pool"]) == POOL_SIZE
        and len(where["replicas"]) == REPLICAS == running
        and set(where["pool"]) | set(where["replicas"]) <= alive
    )


def wait_until(check: Callable[[], bool], budget_s: float) -> float:
    started = time.monotonic()
    wait_for(check, budget_s, lambda: f"not recovered: {placement()}", interval_s=0.5)
    return time.monotonic() - started


def run(state_dir: Path, requests_after: int) -> dict[str, Any]:
    settings = load_settings(state_dir=state_dir)
    raw = write_raw(str(state_dir / "raw"))
    snapshot = load_sample(settings, raw, batch_rows=5000)
    driver = str(snapshot.index[0])
    overrides = settings.model_dump()

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "_system_config": SYSTEM_CONFIG},
    )
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        cluster.wait_for_nodes()
        return _scenario(cluster, workers, overrides, driver, requests_after)
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()


def _scenario(cluster: Cluster, workers: list, overrides: dict, driver: str, requests_after: int) -> dict[str, Any]:
    pool = FeatureServerPool(POOL_SIZE, "rideshare", overrides)
    ray.get([actor.served_by_tier.remote() for actor in pool.actors])
    port = free_port()
    # One proxy, on the head: the nodes share this machine's loopback, so a proxy per node would share a port.
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    app = FeatureAPI.options(num_replicas=REPLICAS, max_replicas_per_node=1).bind("rideshare", overrides)
    serve.run(app, name=APP, route_prefix="/features")
    before = placement()

    node_ids = {node.node_id: node for node in workers}
    victim = next(node_ids[n] for n in before["replicas"] if n in node_ids)
    clients = [http_client(f"http://127.0.0.1:{port}/features/v1/features:get", driver), actor_client(pool, driver)]
    for client in clients:
        client.start()
    wait_until(lambda: all(c.counts["ok"] >= 20 for c in clients), 60)
    cluster.remove_node(victim)
    removed_at = time.monotonic()
    recovery_s = wait_until(lambda: recovered(placement()), RECOVERY_BUDGET_S)
    # Load goes on after the recovery, so the new actors and replicas answer too.
    floor = {c.name: c.counts["requests"] + requests_after for c in clients}
    wait_until(lambda: all(c.counts["requests"] >= floor[c.name] for c in clients), 60)
    for client in clients:
        client.stop()
    return {
        "nodes_before": len(before["alive_nodes"]),
        "before": before,
        "removed_node": victim.node_id,
        "after": placement(),
        "recovery_s": round(recovery_s, 2),
        "load_s_after_removal": round(time.monotonic() - removed_at, 2),
        "clients": {c.name: {**c.counts, "errors": dict(c.errors)} for c in clients},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--requests-after", type=int, default=60, help="requests per client after the recovery")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.state_dir.absolute(), args.requests_after)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
