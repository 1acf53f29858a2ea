"""`ma-ray apply`, `features list|describe` and `lineage` as a user runs them, on both meta stores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import yaml

from ma_ray.config import Settings
from ma_ray.connections import cassandra_cluster

SAMPLE = resources.files("ma_ray.palette") / "samples" / "rideshare"


@pytest.fixture(params=["sqlite", "cassandra"])
def cli_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, "MA_RAY_STATE_DIR": str(tmp_path / "state"), "MA_RAY_META_STORE": request.param}
    if request.param == "sqlite":
        yield env
        return
    services: Settings = request.getfixturevalue("services")
    keyspace = f"test_cli_{uuid.uuid4().hex[:8]}"
    env["MA_RAY_CASSANDRA_KEYSPACE"] = keyspace
    env["MA_RAY_CASSANDRA_PORT"] = str(services.cassandra.port)
    yield env
    cluster = cassandra_cluster(services)
    cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}_meta")
    cluster.shutdown()


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    target = tmp_path / "repo"
    with resources.as_file(SAMPLE) as path:
        shutil.copytree(path, target)
    return target


def run(cli: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli, *args], capture_output=True, text=True, check=False, env=env, timeout=120)


def test_apply_list_describe_lineage(ma_ray_cli: str, cli_env: dict[str, str], repo_dir: Path) -> None:
    applied = run(ma_ray_cli, cli_env, "apply", str(repo_dir))
    assert applied.returncode == 0, applied.stderr
    assert "5 new, 0 updated, 0 unchanged group(s)" in applied.stdout
    again = json.loads(run(ma_ray_cli, cli_env, "apply", str(repo_dir), "--json").stdout)
    assert again["created"] == [] and len(again["unchanged"]) == 5

    listed = json.loads(run(ma_ray_cli, cli_env, "features", "list", "--json").stdout)
    assert {"@palette:rideshare:driver_stats:trip_count_7d:driver_id", "@basis:request_ts"} <= {
        r["ref"] for r in listed
    }

    described = run(ma_ray_cli, cli_env, "features", "describe", "rideshare.driver_stats")
    assert "version 1 of 1" in described.stdout and "acceptance_rate" in described.stdout

    tree = run(
        ma_ray_cli, cli_env, "lineage", "downstream", "@palette:rideshare:driver_stats:acceptance_rate:driver_id"
    )
    assert "reliability_score" in tree.stdout


def test_refusals_are_messages_not_tracebacks(ma_ray_cli: str, cli_env: dict[str, str], repo_dir: Path) -> None:
    assert run(ma_ray_cli, cli_env, "apply", str(repo_dir)).returncode == 0
    driver = repo_dir / "driver.yaml"
    document = yaml.safe_load(driver.read_text())
    rating = next(f for f in document["groups"][0]["features"] if f["name"] == "rating_avg")
    rating.update(type="string", default="x")
    rating.pop("aggregation", None)  # a string mean would be refused before the schema registry sees it
    driver.write_text(yaml.safe_dump(document))
    refused = run(ma_ray_cli, cli_env, "apply", str(repo_dir))
    assert refused.returncode == 2
    assert "driver_stats.rating_avg: type changed from float to string" in refused.stderr
    assert "Traceback" not in refused.stderr

    (repo_dir / "broken.yaml").write_text("catalog: rideshare\ngroups: [{name: x}]\n")
    broken = run(ma_ray_cli, cli_env, "apply", str(repo_dir))
    assert broken.returncode == 2 and "invalid feature repository" in broken.stderr

    missing = run(ma_ray_cli, cli_env, "features", "describe", "rideshare.nope")
    assert missing.returncode == 2 and "no feature group 'rideshare.nope'" in missing.stderr
