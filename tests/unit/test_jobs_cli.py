"""`ma-ray jobs submit`'s own flags: --dry-run validates without Ray, --preempt-grace-s reaches the controller."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ma_ray import cli
from ma_ray.jobs import allowed_faults, fault_refusals, load_spec, recorded_faults
from ma_ray.jobs import cli as jobs_cli
from ma_ray.jobs.validation import ValidatedJob
from ma_ray.training.run import FaultInjection

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "clusters" / "jobs" / "eta_xgboost.yaml")
CLUSTERS = str(ROOT / "clusters" / "jobs" / "clusters.yaml")


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["jobs", "submit", *argv])


def test_submit_flags_parse() -> None:
    args = parse(SPEC, "--clusters", CLUSTERS, "--dry-run", "--preempt-grace-s", "30")
    assert args.dry_run and args.preempt_grace_s == 30.0
    defaults = parse(SPEC)
    assert not defaults.dry_run and defaults.preempt_grace_s is None  # None: the controller's own default


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_a_bad_grace_period_is_refused_with_what_to_give(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(SPEC, "--preempt-grace-s", value)
    assert "--preempt-grace-s" in capsys.readouterr().err


def test_the_grace_period_is_passed_to_the_controller_it_starts() -> None:
    base = [sys.executable, "-m", "actors.job_controller", "--clusters", CLUSTERS]
    assert jobs_cli.controller_command(CLUSTERS) == base
    assert jobs_cli.controller_command(CLUSTERS, 45.0) == [*base, "--preempt-grace-s", "45.0"]


def test_submit_hands_the_grace_period_to_the_controller(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def controller(clusters: str | None, preempt_grace_s: float | None = None) -> Any:
        seen.append((clusters, preempt_grace_s))
        raise ValueError("stop here: no Ray in a unit test")

    monkeypatch.setattr(jobs_cli, "_controller", controller)
    assert cli.main(["jobs", "submit", SPEC, "--clusters", CLUSTERS, "--preempt-grace-s", "7.5"]) == 2
    assert seen == [(CLUSTERS, 7.5)]


def test_the_controller_script_takes_what_submit_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    command = importlib.import_module("actors.job_controller.__main__")

    class Started(Exception):
        pass

    seen: dict[str, float] = {}

    def start(settings: Any, clusters: Any, poll_s: float, preempt_grace_s: float) -> Any:
        seen["grace"] = preempt_grace_s
        raise Started

    monkeypatch.setattr(command.ray, "init", lambda **_: None)  # parse and start, no Ray
    monkeypatch.setattr(command, "job_controller", start)
    with pytest.raises(Started):
        command.main(jobs_cli.controller_command(CLUSTERS, 45.0)[3:])  # the argv after `-m module`
    assert seen == {"grace": 45.0}


def test_dry_run_needs_a_clusters_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["jobs", "submit", SPEC, "--dry-run"]) == 2
    assert "pass --clusters FILE" in capsys.readouterr().err


def test_dry_run_prints_every_reason_and_never_starts_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray

    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("--dry-run connected to Ray")

    monkeypatch.setattr(ray, "init", no_ray)  # the session may hold a Ray already: the check is that none is asked
    monkeypatch.setenv("MA_RAY_STATE_DIR", str(tmp_path))  # an empty state: no catalog, no snapshots
    monkeypatch.chdir(tmp_path)  # the spec's relative label uri points into the empty state too
    code = cli.main(["jobs", "submit", SPEC, "--clusters", CLUSTERS, "--dry-run", "--json"])
    reasons = json.loads(capsys.readouterr().out)["refused"]
    assert code == jobs_cli.REFUSED
    assert any("catalog 'rideshare' is not registered" in r for r in reasons), reasons
    assert any(r.startswith("label: cannot open") for r in reasons), reasons


def test_dry_run_plan_names_the_snapshots_and_the_request() -> None:
    spec = load_spec(SPEC)
    days = tuple(date(2026, 1, d) for d in range(23, 29))
    plan = jobs_cli.dry_run_plan(ValidatedJob(spec, {"rideshare.driver_stats": days}))
    assert plan["snapshots"] == {"rideshare.driver_stats": [str(d) for d in days]}
    assert plan["request"] == {
        "workers": 2,
        "min_workers": None,
        "worker": {"cpu": 1.0, "gpu": 0.0, "memory_gb": 1.0},
        "data_location": "local",
    }
    text = jobs_cli._describe_plan(plan)
    assert text.startswith("would submit eta_minutes (xgboost, tier 1")
    assert "rideshare.driver_stats: 2026-01-23..2026-01-28 (6 day(s))" in text
    assert "2 worker(s) of 1 CPU, 0 GPU, 1 GiB; data location local" in text


def test_the_grace_period_help_names_the_controllers_default(capsys: pytest.CaptureFixture[str]) -> None:
    from actors.job_controller import PREEMPT_GRACE_S

    with pytest.raises(SystemExit):
        cli.main(["jobs", "submit", "--help"])
    assert f"the controller's, {PREEMPT_GRACE_S:g} s" in " ".join(capsys.readouterr().out.split())


def test_fault_injection_is_not_part_of_a_job_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    faulty = tmp_path / "faulty.yaml"
    faulty.write_text(load_spec(SPEC).to_yaml() + "faults: {fail_at_step: 3}\n")
    monkeypatch.setenv("MA_RAY_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("MA_RAY_TEST_HOOKS", "1")  # not even with test hooks on: a spec file cannot name them
    monkeypatch.chdir(tmp_path)
    assert cli.main(["jobs", "submit", str(faulty), "--clusters", CLUSTERS, "--dry-run", "--json"]) == jobs_cli.REFUSED
    reasons = json.loads(capsys.readouterr().out)["refused"]
    assert reasons == ["faults: unknown field (check its spelling; see the TrainingJobSpec docstring)"]


@pytest.mark.parametrize("hooks_on", [False, True])
def test_fault_injection_is_a_test_hook_refused_unless_the_settings_allow_it(tmp_path: Path, hooks_on: bool) -> None:
    from ma_ray.config import load_settings

    settings = load_settings(state_dir=tmp_path, test_hooks=hooks_on)
    assert fault_refusals({}, settings) == []
    refused = fault_refusals(recorded_faults(FaultInjection(fail_at_step=3)), settings)
    assert (refused == []) is hooks_on
    assert all(r.startswith("faults: fault injection is a test hook") for r in refused)


def test_the_training_entrypoint_ignores_faults_without_test_hooks(tmp_path: Path) -> None:
    from ma_ray.config import load_settings

    recorded = recorded_faults(FaultInjection(fail_at_step=3, preempt_at_step=5))  # what a job's record carries
    assert recorded == {"fail_at_step": 3, "preempt_at_step": 5}
    assert allowed_faults(recorded, load_settings(state_dir=tmp_path)) == FaultInjection()
    hooked = allowed_faults(recorded, load_settings(state_dir=tmp_path, test_hooks=True))
    assert hooked == FaultInjection(fail_at_step=3, preempt_at_step=5)
