"""Stream lag state across nodes; prints one JSON report for test_multinode_stream_health.py.

    python -m tests.integration.multinode_stream_health --state-dir DIR --settings JSON

Ray's ``ray.cluster_utils.Cluster`` starts a head and two worker nodes on this machine. Each node gets a state
dir of its own, as separate machines have separate disks; the production backends (Cassandra, Redis, Kafka)
are the servers the settings name. A real aggregation actor on node A reads a topic it has not caught up with and
publishes its lag; a feature-serving actor on node B resolves a driver's streaming feature. The stream lags past
the group's SLA, so node B must serve the batch value and say so, knowing only what the health board tells it.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import ray
from ray.cluster_utils import Cluster

from actors.feature_server import FeatureServerActor
from actors.stream_aggregator import StreamAggregatorActor, StreamConfig, ensure_topic
from apps.stream_pipeline import replay
from ma_ray.config import Settings, load_settings
from ma_ray.datagen.rideshare import TRIP_EVENT_SCHEMA
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.palette.online import EntityRow, OnlineTable, now_us, open_online_store
from ma_ray.palette.registry import FeatureRegistry
from ma_ray.palette.repository import load_repository

REALTIME = "@palette:rideshare:driver_realtime:trip_count_1h:driver_id"
BACKLOG = 50  # events the aggregation actor has not read when it reports its lag


def prepare(settings: Settings, driver: str) -> Any:
    """The catalog in the production meta store; a streamed value and the batch pipeline's value for one driver."""
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        repo = load_repository(path)
    meta = open_meta_store(settings)
    try:
        FeatureRegistry(meta, user="test").apply(repo)
    finally:
        meta.close()
    table = OnlineTable.of(repo, next(g for g in repo.groups if g.name == "driver_realtime"))
    store = open_online_store(settings)
    try:
        for target, count in ((table, 7), (table.batch_fallback(), 4)):
            store.update(target)
            store.put(target, [EntityRow(driver, now_us() - 60_000_000, {"trip_count_1h": count})])
    finally:
        store.close()
    return repo


def run(state_dir: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    node_settings = {n: {**overrides, "state_dir": str(state_dir / n)} for n in ("node_a", "node_b")}
    driver, topic = "drv_lagging", f"health-{uuid.uuid4().hex[:8]}"
    repo = prepare(load_settings(**node_settings["node_a"]), driver)
    ensure_topic(load_settings(**overrides), topic, partitions=1)
    events = [(driver.encode(), json.dumps({"driver_id": driver, "event_type": "requested",
                                            "event_ts": now_us()}).encode()) for _ in range(BACKLOG)]  # fmt: skip
    replay(load_settings(**overrides), topic, events)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for node in node_settings:
        cluster.add_node(num_cpus=1, resources={node: 1})
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        cluster.wait_for_nodes()
        config = StreamConfig(topic, (0,), f"g-{topic}", f"rideshare.driver_realtime.{topic}.0")
        aggregator = StreamAggregatorActor.options(resources={"node_a": 0.1}).remote(
            repo, "driver_realtime", config, node_settings["node_a"], event_schema=TRIP_EVENT_SCHEMA
        )
        lag = ray.get(aggregator.lag.remote(), timeout=120)  # publishes its health: BACKLOG unread, no batch yet
        reader = FeatureServerActor.options(resources={"node_b": 0.1}).remote("rideshare", node_settings["node_b"])
        answer = ray.get(reader.get_features.remote([{"driver_id": driver}], [REALTIME]), timeout=120)
        nodes = ray.get([actor.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id())
                         for actor in (aggregator, reader)])  # fmt: skip
        meta = answer["rows"][0]["meta"][REALTIME]
        return {"lag": lag, "nodes": nodes, "stream_fallback": answer["stream_fallback"],
                "value": answer["rows"][0]["values"][REALTIME], "batch_fallback": meta["batch_fallback"]}  # fmt: skip
    finally:
        ray.shutdown()
        cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--settings", required=True, help="JSON: the production settings (servers, keyspace)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.state_dir, json.loads(args.settings))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
