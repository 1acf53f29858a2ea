"""Beyond one machine: a three-node Ray cluster (head + two workers, real raylets) loses a worker under load.

The scenario (`multinode_scenario.py`) runs in its own process with its own Ray temp dir, apart from the
session's Ray; it prints one JSON report, asserted on here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    # Short, private: Ray's socket paths live under it, and `ray.init()` elsewhere must not find this cluster.
    ray_tmp = tempfile.mkdtemp(prefix="mn", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    env.pop("RAY_ADDRESS", None)
    state = tmp_path_factory.mktemp("multinode")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tests.integration.multinode_scenario", "--state-dir", str(state)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        yield json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_actors_and_replicas_spread_over_the_nodes(report: dict[str, Any]) -> None:
    before = report["before"]
    assert report["nodes_before"] == 3
    assert len(before["pool"]) == 3 and len(set(before["pool"])) >= 2
    assert len(set(before["replicas"])) == 2  # max_replicas_per_node=1
    assert report["removed_node"] in before["replicas"]


def test_removing_a_node_under_load_fails_no_request(report: dict[str, Any]) -> None:
    for name, counts in report["clients"].items():
        assert counts["failures"] == 0, (name, counts)
        assert counts["ok"] == counts["requests"] > 60, (name, counts)
        # every error a client saw was retried and the retry succeeded
        assert sum(counts["errors"].values()) == counts["retries"], (name, counts)


def test_actors_and_replicas_come_back_on_the_remaining_nodes(report: dict[str, Any]) -> None:
    after = report["after"]
    remaining = set(report["before"]["alive_nodes"]) - {report["removed_node"]}
    assert set(after["alive_nodes"]) == remaining
    assert len(after["pool"]) == 3 and set(after["pool"]) <= remaining
    assert len(after["replicas"]) == 2 and set(after["replicas"]) == remaining  # one replica per node
