"""`ma-ray demo` end to end, joined to the session's Ray the way `ray job submit` would run it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ma_ray.datagen import read_raw
from ma_ray.palette.meta_store.sqlite import SqliteMetaStore
from ma_ray.palette.registry import FeatureRegistry


def _run_demo(cli: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli, "demo", *args], capture_output=True, text=True, check=False, env=env, timeout=300)


def test_demo_generates_the_raw_data_set(ray_cluster: str, tmp_path: Path, ma_ray_cli: str) -> None:
    env = {**os.environ, "MA_RAY_RAY_ADDRESS": ray_cluster, "MA_RAY_STATE_DIR": str(tmp_path)}
    result = _run_demo(ma_ray_cli, ["--trips", "10000", "--days", "7"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"\[1/\d+\] generate rideshare data", result.stdout)
    assert re.search(r"\[2/\d+\] apply feature repository", result.stdout)
    assert re.search(r"\[3/\d+\] batch features to the online store", result.stdout)
    assert re.search(r"\[4/\d+\] look up features", result.stdout)
    assert "single-driver lookups through the actor pool" in result.stdout
    assert re.search(r"\[5/\d+\] stream features", result.stdout) and "events/s" in result.stdout
    assert re.search(r"\[6/\d+\] train a model through the job controller", result.stdout)
    assert "registered eta_minutes:1 with lineage" in result.stdout
    assert re.search(r"\[7/\d+\] deploy the model", result.stdout)
    assert "deployed eta_minutes:1 as production (was None)" in result.stdout
    assert re.search(r"\[8/\d+\] predict over HTTP", result.stdout)
    assert "total over HTTP" in result.stdout
    assert re.search(r"all \d+ stages done", result.stdout)
    raw = f"{tmp_path.absolute()}/offline/raw"
    assert read_raw(raw, "trips").count_rows() == 10_000
    assert read_raw(raw, "drivers").count_rows() == 200
    dates = set(read_raw(raw, "trips").to_table(columns=["date"])["date"].to_pylist())
    assert len(dates) == 7
    assert read_raw(raw, "trip_events").count_rows() > 20_000
    store = SqliteMetaStore(tmp_path / "palette_meta.sqlite")
    features = FeatureRegistry(store).features("rideshare")
    store.close()
    assert "@palette:rideshare:driver_stats:trip_count_7d:driver_id" in {f.ref for f in features}
    assert "reliability_score" in result.stdout  # the lineage tree of raw:trips reaches derived features


def test_demo_refuses_bad_arguments_without_a_traceback(tmp_path: Path, ma_ray_cli: str) -> None:
    env = {**os.environ, "MA_RAY_STATE_DIR": str(tmp_path)}
    result = _run_demo(ma_ray_cli, ["--trips", "5"], env)
    assert result.returncode == 2
    assert "trips" in result.stderr and "greater than or equal to 10000" in result.stderr
    assert "Traceback" not in result.stderr
