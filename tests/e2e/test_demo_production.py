"""`ma-ray demo --production` end to end on the real Cassandra, Redis and Kafka, joined to the session's Ray.

Each run gets its own state directory, Cassandra keyspaces and Kafka topic, dropped afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

from ma_ray.config import Settings, load_settings
from ma_ray.connections import cassandra_cluster, kafka_admin
from ma_ray.gallery import Gallery
from ma_ray.palette.meta_store.cassandra import CassandraMetaStore
from ma_ray.palette.registry import FeatureRegistry
from tests.ports import free_port


def _drop(services: Settings, keyspace: str, topic: str) -> None:
    cluster = cassandra_cluster(services)
    try:
        session = cluster.connect()
        for suffix in ("online", "meta", "gallery"):
            session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}_{suffix}", timeout=60)
    finally:
        cluster.shutdown()
    kafka_admin(services).delete_topics([topic, f"{topic}.dead-letter"])


def test_production_demo_runs_every_stage_on_the_real_servers(
    services: Settings, ray_cluster: str, tmp_path: Path, ma_ray_cli: str
) -> None:
    keyspace, topic = f"demo_{uuid.uuid4().hex[:8]}", f"demo-trips-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "MA_RAY_RAY_ADDRESS": ray_cluster,
        "MA_RAY_STATE_DIR": str(tmp_path),
        "MA_RAY_CASSANDRA_KEYSPACE": keyspace,
    }
    args = [ma_ray_cli, "demo", "--production", "--trips", "10000", "--days", "7", "--topic", topic]
    try:
        result = subprocess.run(args, capture_output=True, text=True, check=False, env=env, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        settings = load_settings(cassandra_keyspace=keyspace)
        meta = CassandraMetaStore(settings)
        features = {f.ref for f in FeatureRegistry(meta).features("rideshare")}
        meta.close()
        gallery = Gallery.from_settings(
            load_settings(
                cassandra_keyspace=keyspace, gallery_store="cassandra", alias_broadcast="redis", state_dir=tmp_path
            )
        )
        aliases = gallery.aliases("eta_minutes")
        gallery.close()
    finally:
        _drop(services, keyspace, topic)

    out = result.stdout
    assert all(line in out for line in ("redis at ", "cassandra at ", "kafka at "))  # checked before stage 1
    stages = re.findall(r"^\[(\d+)/(\d+)\] (.+)$", out, re.MULTILINE)
    total = int(stages[0][1])
    assert [int(number) for number, _, _ in stages] == list(range(1, total + 1))
    assert out.count("    done in ") == total and f"all {total} stages done" in out
    assert "online store cassandra" in out and "meta store cassandra" in out
    produced = re.search(
        rf"Kafka topic {topic} \(2 partitions, ([\d,]+) events produced in .*\) and 2 aggregation", out
    )
    assert produced and int(produced.group(1).replace(",", "")) > 1000
    assert ", 0 dead-lettered" in out
    assert "registered eta_minutes:1 with lineage" in out and "deployed eta_minutes:1 as production" in out
    assert "total over HTTP" in out
    assert "@palette:rideshare:driver_stats:trip_count_7d:driver_id" in features
    assert aliases == {"production": 1}


def test_production_demo_says_how_to_start_missing_services(tmp_path: Path, ma_ray_cli: str) -> None:
    env = {
        **os.environ,
        "MA_RAY_STATE_DIR": str(tmp_path),
        "MA_RAY_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "MA_RAY_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
    }
    result = subprocess.run(
        [ma_ray_cli, "demo", "--production"], capture_output=True, text=True, check=False, env=env, timeout=120
    )
    assert result.returncode == 1
    assert "redis at 127.0.0.1" in result.stderr and "kafka at 127.0.0.1" in result.stderr
    assert result.stderr.rstrip().endswith("run: ma-ray services up")
    assert "Traceback" not in result.stderr and "[1/" not in result.stdout
