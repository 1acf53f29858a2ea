"""The lag fallback to batch values across nodes: an aggregation actor on one node, a reader on another, each with
a state dir of its own; the production health board (Redis) carries the lag (see multinode_stream_health.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from ma_ray.config import Settings
from ma_ray.connections import cassandra_cluster

ROOT = Path(__file__).resolve().parents[2]


def test_a_reader_on_another_node_falls_back_to_batch_values(services: Settings, tmp_path: Path) -> None:
    keyspace = f"t_{uuid.uuid4().hex[:8]}"
    overrides = {
        **services.model_dump(mode="json"), "online_store": "cassandra", "meta_store": "cassandra",
        "cassandra_keyspace": keyspace, "offline_uri": "", "artifact_uri": "", "feature_timeout_s": 5.0,
        "cassandra_request_timeout_s": 5.0,
    }  # fmt: skip
    ray_tmp = tempfile.mkdtemp(prefix="mh", dir="/tmp")  # short, private: `ray.init()` elsewhere must not find it
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tests.integration.multinode_stream_health", "--state-dir", str(tmp_path),
             "--settings", json.dumps(overrides)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-4000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
        session = cassandra_cluster(services)
        for suffix in ("_online", "_meta"):
            session.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}{suffix}")
        session.shutdown()
    assert report["lag"] > 0
    assert report["nodes"][0] != report["nodes"][1], "the actor and the reader must run on different nodes"
    assert not (tmp_path / "node_b" / "stream_checkpoints").exists()  # nothing of node A's reached B's disk
    assert report["stream_fallback"] == ["driver_realtime"]
    assert (report["value"], report["batch_fallback"]) == (4, True)
