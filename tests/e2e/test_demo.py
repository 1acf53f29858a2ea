"""`ma-ray demo` end to end as a newcomer runs it (see `newcomer_demo`): its own Ray, PATH without the venv, a fresh
state dir; the outcome read from the demo's JSON summary, not from its prose."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ma_ray.datagen import read_raw
from ma_ray.palette.meta_store.sqlite import SqliteMetaStore
from ma_ray.palette.registry import FeatureRegistry
from tests.e2e.conftest import NEWCOMER_TRIPS, ROOT, NewcomerDemo, newcomer_env

STAGES = [
    "generate rideshare data",
    "apply feature repository",
    "batch features to the online store",
    "look up features",
    "stream features",
    "train a model through the job controller",
    "deploy the model",
    "predict over HTTP",
]


def test_newcomer_demo_passes_every_stage(newcomer_demo: NewcomerDemo) -> None:
    result, summary = newcomer_demo.result, newcomer_demo.summary
    failed = [s for s in summary["stages"] if s["outcome"] != "passed"]
    assert result.returncode == 0 and summary["passed"] and not failed, (failed, result.stderr[-3000:])
    assert [s["title"] for s in summary["stages"]] == STAGES
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


def test_newcomer_demo_figures(newcomer_demo: NewcomerDemo) -> None:
    figures = {s["number"]: s["figures"] for s in newcomer_demo.summary["stages"]}
    assert figures[1]["trips"] == NEWCOMER_TRIPS and figures[1]["trip_events"] > 2 * NEWCOMER_TRIPS
    assert figures[2]["features"] > figures[2]["derived_features"] > 0
    assert figures[3]["snapshots"]["driver_stats"]["rows"] > 0
    assert figures[4]["lookup_p99_ms"] >= figures[4]["lookup_p50_ms"] > 0 and len(figures[4]["hot_drivers"]) == 5
    assert figures[6]["model_version"] == "eta_minutes:1" and figures[6]["training_rows"] > 0
    assert figures[6]["metrics"]["valid_rmse"] > 0
    assert figures[7]["deployment"]["model_id"] == "eta_minutes:1"
    assert len(figures[8]["predictions"]) == 5 and all(p > 0 for p in figures[8]["predictions"])
    assert figures[8]["latency_ms"]["total over HTTP"]["p50"] > 0


def test_newcomer_demo_leaves_its_world_in_the_state_dir(newcomer_demo: NewcomerDemo) -> None:
    raw = f"{newcomer_demo.state_dir.absolute()}/offline/raw"
    assert read_raw(raw, "trips").count_rows() == NEWCOMER_TRIPS
    assert len(set(read_raw(raw, "trips").to_table(columns=["date"])["date"].to_pylist())) == 28
    store = SqliteMetaStore(newcomer_demo.state_dir / "palette_meta.sqlite")
    try:
        features = FeatureRegistry(store).features("rideshare")
    finally:
        store.close()
    assert "@palette:rideshare:driver_stats:trip_count_7d:driver_id" in {f.ref for f in features}


def _run_demo(cli: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli, "demo", *args], capture_output=True, text=True, check=False, env=env, timeout=300)


def test_demo_refuses_bad_arguments_without_a_traceback(tmp_path: Path, ma_ray_cli: str) -> None:
    result = _run_demo(ma_ray_cli, ["--trips", "5"], newcomer_env(tmp_path))
    assert result.returncode == 2
    assert "trips" in result.stderr and "greater than or equal to 10000" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failed_stage_is_one_message_naming_it_and_where_to_look(tmp_path: Path, ma_ray_cli: str) -> None:
    """A raw-data folder that cannot be made (a file stands where it should be) fails stage 1: one message, the
    traceback in a file it names, the summary written with the rest not run."""
    env = {**newcomer_env(tmp_path), "MA_RAY_RAY_NUM_CPUS": "1"}
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = _run_demo(ma_ray_cli, ["--trips", "10000", "--raw-uri", str(blocker / "raw")], env)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    message = [line for line in result.stderr.splitlines() if line.startswith(("error: stage", "more: "))]
    assert message[0].startswith("error: stage 1/8 (generate rideshare data) failed: "), result.stderr[-2000:]
    assert message[1] == f"more: cat {tmp_path}/demo-traceback.txt"
    assert "Traceback" in (tmp_path / "demo-traceback.txt").read_text()
    stages = json.loads((tmp_path / "demo-summary.json").read_text())["stages"]
    assert [s["outcome"] for s in stages] == ["failed"] + ["not run"] * 7


def test_the_training_job_can_be_read_after_the_demo_and_its_ray_ended(newcomer_demo: NewcomerDemo) -> None:
    """The command a failed stage 6 names (`ma-ray jobs logs <id>`) works once the demo's Ray is gone: read from
    the job store."""
    job_id = next(s for s in newcomer_demo.summary["stages"] if s["number"] == 6)["figures"]["training_job"]
    run = {"cwd": ROOT, "env": newcomer_demo.env, "capture_output": True, "text": True, "timeout": 120}
    status = subprocess.run([newcomer_demo.cli, "jobs", "status", job_id], check=False, **run)
    assert status.returncode == 0, status.stderr[-2000:]
    assert status.stdout.startswith(f"{job_id}: succeeded") and "registered eta_minutes:1" in status.stdout
    assert "reading the job store" in status.stderr
    logs = subprocess.run([newcomer_demo.cli, "jobs", "logs", job_id], check=False, **run)
    assert logs.returncode == 0 and "===== attempt 1 =====" in logs.stdout, logs.stderr[-2000:]
    unknown = subprocess.run([newcomer_demo.cli, "jobs", "logs", "nope-1"], check=False, **run)
    assert unknown.returncode != 0 and "no job 'nope-1'" in unknown.stderr and "Traceback" not in unknown.stderr
