"""The job controller end to end: specs refused before submission, XGBoost / PyTorch / DeepSpeed jobs trained on a
real Ray cluster through its job-submission API (each with a forced failure, a retry that resumes from the
checkpoint, and registration in Gallery with lineage), a controller killed mid-job that picks up where it was, a
running job preempted for a tier-1 job that checkpoints on the controller's notice and resumes from it, an elastic
job scaled up while running that checkpoints on the same notice and restarts at once with more workers.

The controller actor lives in the session's Ray and submits the jobs to that same cluster's job server (the
session Ray is a `ray start --head` cluster with its dashboard, see tests/ray_head.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import ray
import yaml
from ray.job_submission import JobSubmissionClient

from actors.job_controller import job_controller, record_of, submit, wait
from apps.train import build_labels
from ma_ray.config import Settings, load_settings
from ma_ray.datagen import read_raw
from ma_ray.datagen.rideshare_features import driver_stats
from ma_ray.gallery import Gallery
from ma_ray.jobs import ClusterSpec, NodeSpec, TrainingJobSpec, parse_spec
from ma_ray.jobs.cli import add_commands
from ma_ray.jobs.workflow import CONTROLLER_NAME, CONTROLLER_NAMESPACE, JobState
from ma_ray.palette.lineage import Direction, model_node, snapshot_node
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.palette.offline import OfflineStore
from ma_ray.palette.registry import FeatureRegistry
from ma_ray.training import FaultInjection
from ma_ray.training.checkpoint_store import CheckpointStore, checkpoint_root
from ma_ray.training.trainers.preemption import ControlNotice
from ma_ray.training.trainers.run_log import RunLog
from tests.polling import wait_for
from tests.rideshare_data import sample_repository

STATS = "@palette:rideshare:driver_stats:{}:driver_id"
RELIABILITY = "@palette:rideshare:driver_model_inputs:reliability_score:driver_id"
SNAPSHOTS = (date(2026, 1, 5), date(2026, 1, 6))
JOB_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, raw_uri: str) -> Settings:
    """Embedded stores in a fresh state dir: the sample catalog applied, two daily driver_stats snapshots."""
    settings = load_settings(state_dir=tmp_path_factory.mktemp("jobs_state"), test_hooks=True)  # specs inject faults
    meta = open_meta_store(settings)
    FeatureRegistry(meta).apply(sample_repository())
    meta.close()
    offline = OfflineStore(settings.offline_uri)
    for day in SNAPSHOTS:
        offline.write_snapshot("rideshare", "driver_stats", day, driver_stats(raw_uri, day), join_key="driver_id")
    return settings


@pytest.fixture(scope="module")
def clusters(job_server: str) -> list[ClusterSpec]:
    return [ClusterSpec(name="local", address=job_server, nodes=(NodeSpec(name="head", cpu=2, memory_gb=4),))]


@pytest.fixture(scope="module")
def _controller_lifetime(ray_cluster: str) -> Iterator[None]:
    """The detached controller outlives every test of the module, and no more."""
    yield
    with contextlib.suppress(ValueError):
        ray.kill(ray.get_actor(CONTROLLER_NAME, namespace=CONTROLLER_NAMESPACE))


@pytest.fixture
def controller(_controller_lifetime: None, settings: Settings, clusters: list[ClusterSpec]) -> Any:
    return job_controller(settings, clusters, poll_s=0.5)


def kill(controller: Any, timeout_s: float = 60.0) -> None:
    """Kill the controller like a crash would, and wait until its name is free."""
    ray.kill(controller)

    def gone() -> bool:
        try:
            ray.get_actor(CONTROLLER_NAME, namespace=CONTROLLER_NAMESPACE)
        except ValueError:
            return True
        return False

    wait_for(gone, timeout_s, f"{CONTROLLER_NAME} still registered after ray.kill", interval_s=0.1)


def wait_while(controller: Any, job_id: str, states: tuple[str, ...], timeout_s: float = JOB_TIMEOUT_S) -> str:
    """Poll the job's state until it leaves ``states``; fail, naming the state and message, after ``timeout_s``."""
    status: dict[str, Any] = {}

    def left() -> bool:
        status.update(ray.get(controller.status.remote(job_id)))
        return status["state"] not in states

    wait_for(left, timeout_s, lambda: f"{job_id} still {status['state']}: {status['message']}")
    return str(status["state"])


def spec(raw_uri: str, **changes: Any) -> TrainingJobSpec:
    data: dict[str, Any] = {
        "name": "eta_minutes",
        "framework": "xgboost",
        "tier": 1,
        "owner": "marketplace-ml",
        "features": [STATS.format("trip_count_7d"), STATS.format("rating_avg"), RELIABILITY],
        "transforms": {"request_hour": "hour(@basis:request_ts)"},
        "label": {
            "uri": raw_uri,
            "table": "trips",
            "timestamp": "requested_at",
            "name": "minutes",
            "value": "@basis:duration_s / 60",
            "where": "@basis:status == 'completed'",
            "columns": {"driver_id": "driver_id", "request_ts": "requested_at"},
        },
        "data": {"snapshot": "2026-01-06"},
        "hyperparameters": {"max_depth": 3, "eta": 0.3, "num_boost_round": 12},
        "resources": {"workers": 1, "cpus_per_worker": 1, "memory_gb_per_worker": 0.5},
        "checkpoint_every_steps": 2,
        "max_failures": 0,
    }
    data.update(changes)
    return parse_spec(data)


def resumed_at_the_notice(controller: Any, settings: Settings, job_id: str, reason: str, rounds: int) -> dict:
    """The job checkpointed on a notice given for ``reason``, its second attempt resumed from that step and
    finished all ``rounds``, and neither used up an attempt. Returns the job's status."""
    lines = run_log(settings, job_id)
    pattern = rf"Preemption notice at step (\d+): checkpoint_now \({re.escape(reason)}\)"
    (notice,) = [m for line in lines if (m := re.fullmatch(pattern, line))]
    step = int(notice[1])
    assert f"Resumed from step {step}" in lines[lines.index(notice[0]) :]
    status = ray.get(controller.status.remote(job_id))
    assert (status["attempt"], status["failures"]) == (2, 0)
    assert status["outcome"]["resumed_from_step"] == step < status["outcome"]["final_step"] == rounds
    return status


def refusal(controller: Any, data: dict[str, Any]) -> list[str]:
    answer = ray.get(controller.submit.remote(data))
    assert "job" not in answer
    return answer["refused"]


def test_bad_specs_are_refused_before_anything_is_submitted(controller: Any, raw_uri: str, job_server: str) -> None:
    good = spec(raw_uri).model_dump(mode="json")
    jobs_before = ray.get(controller.list.remote())
    ray_jobs_before = JobSubmissionClient(job_server).list_jobs()
    (unknown,) = refusal(controller, {**good, "features": [STATS.format("trip_count_99d")]})
    assert unknown.startswith(f"unknown feature {STATS.format('trip_count_99d')}: group 'driver_stats' has no ")
    assert "trip_count_7d" in unknown  # the features it does have
    (missing,) = refusal(controller, {**good, "data": {"snapshot": "2026-01-03"}})
    assert missing.startswith("missing snapshot: no offline snapshot of rideshare.driver_stats dated 2026-01-03")
    assert "have: 2026-01-05, 2026-01-06" in missing
    (impossible,) = refusal(controller, {**good, "resources": {"workers": 8, "cpus_per_worker": 4}})
    assert impossible.startswith("resources: job 'eta_minutes' (tier 1) needs 8 x") and "fewer or smaller" in impossible
    (framework,) = refusal(controller, {**good, "framework": "lightgbm"})
    assert framework == "framework: unknown framework 'lightgbm': use one of xgboost, torch, deepspeed"
    assert len(refusal(controller, {**good, "tier": 9, "framework": "sklearn"})) == 2
    assert ray.get(controller.list.remote()) == jobs_before
    assert len(JobSubmissionClient(job_server).list_jobs()) == len(ray_jobs_before)


def assert_registered(settings: Settings, job: Any, model: str) -> None:
    gallery = Gallery.from_settings(settings)
    try:
        name, number = job.model_version.split(":")
        version = gallery.version(name, int(number))
    finally:
        gallery.close()
    assert name == model
    assert version.training_job_id == job.job_id
    assert version.training_snapshot == "rideshare.driver_stats:2026-01-06..2026-01-06"
    meta = open_meta_store(settings)
    try:
        upstream = FeatureRegistry(meta).lineage(model_node(name, number), Direction.UPSTREAM).nodes()
    finally:
        meta.close()
    assert STATS.format("trip_count_7d") in upstream
    assert snapshot_node("rideshare.driver_stats:2026-01-06..2026-01-06") in upstream


def assert_failed_once_then_resumed(controller: Any, job_id: str, attempts: int = 2) -> dict[str, Any]:
    status = ray.get(controller.status.remote(job_id))
    assert (status["state"], status["attempt"], status["failures"]) == ("succeeded", attempts, 1)
    outcome = status["outcome"]
    assert outcome["status"] == "succeeded" and outcome["resumed_from_step"] >= 2
    assert outcome["checkpoints"]
    messages = [e["message"] for e in status["events"]]
    assert any("attempt 1 failed (1 of 3); retrying from the newest checkpoint" in m for m in messages)
    logs = ray.get(controller.logs.remote(job_id))
    assert set(logs) == set(range(1, attempts + 1))
    return status


def test_xgboost_job_fails_once_is_preempted_once_resumes_each_time_and_registers(
    controller: Any, settings: Settings, raw_uri: str
) -> None:
    job = submit(controller, spec(raw_uri), FaultInjection(fail_at_step=5, preempt_at_step=9))
    queued = submit(controller, spec(raw_uri, resources={"workers": 2, "cpus_per_worker": 1}))
    assert ray.get(controller.status.remote(queued.job_id))["state"] == "pending"  # the first holds the cluster
    cancelled = record_of(ray.get(controller.cancel.remote(queued.job_id)))
    assert cancelled.state is JobState.CANCELLED and cancelled.attempt == 0
    done = wait(controller, job.job_id, JOB_TIMEOUT_S)
    assert done.state is JobState.SUCCEEDED, done.message
    status = assert_failed_once_then_resumed(controller, job.job_id, attempts=3)
    assert any(e["message"] == "attempt 2 preempted; queued to resume" for e in status["events"])
    assert status["outcome"]["resumed_from_step"] == 9  # the checkpoint taken on the preemption notice
    assert status["outcome"]["final_step"] == 12 and status["outcome"]["metrics"]
    assert status["outcome"]["engine"] == "local"  # a small XGBoost job trains in one process
    assert_registered(settings, done, "eta_minutes")


def test_a_restarted_controller_reloads_its_jobs_and_finishes_monitoring(
    controller: Any, settings: Settings, raw_uri: str, clusters: list[ClusterSpec]
) -> None:
    job = submit(
        controller,
        spec(
            raw_uri,
            name="eta_minutes_mlp",
            framework="torch",
            tier=3,
            hyperparameters={"hidden": [8], "epochs": 2, "batch_size": 256, "lr": 0.01},
            checkpoint_every_steps=3,
        ),
        FaultInjection(fail_at_step=4),
    )
    wait_while(controller, job.job_id, ("pending",))
    kill(controller)
    revived = job_controller(settings, clusters, poll_s=0.5)
    assert job.job_id in [j["job_id"] for j in ray.get(revived.list.remote())]
    done = wait(revived, job.job_id, JOB_TIMEOUT_S)
    assert done.state is JobState.SUCCEEDED, done.message
    status = assert_failed_once_then_resumed(revived, job.job_id)
    assert any(e["message"] == "controller restarted; monitoring resumed" for e in status["events"])
    assert_registered(settings, done, "eta_minutes_mlp")


def run_log(settings: Settings, job_id: str) -> list[str]:
    """The job's trainer log lines, every attempt's, from its checkpoint store."""
    return RunLog.read(CheckpointStore(checkpoint_root(settings), job_id))


def checkpointed(controller: Any, settings: Settings, job_id: str) -> bool:
    """Whether the running job has logged a checkpoint; it must not have ended before one."""
    if any(line.startswith("Checkpoint ") for line in run_log(settings, job_id)):
        return True
    assert not record_of(ray.get(controller.status.remote(job_id))).state.terminal
    return False


def event_at(status: dict[str, Any], prefix: str) -> float:
    return next(e["at"] for e in status["events"] if e["message"].startswith(prefix))


def test_a_tier1_job_preempts_a_running_job_which_checkpoints_on_the_notice_and_resumes_from_it(
    controller: Any, settings: Settings, raw_uri: str, job_server: str
) -> None:
    """The cluster (2 CPUs) holds the tier-3 job (2 x 0.5 CPU) or the tier-1 job (2 x 1 CPU), not both. The tier-3
    job trains on Ray Train, so the controller's notice is shared by a worker group's ranks."""
    low = submit(
        controller,
        spec(
            raw_uri,
            name="eta_minutes_backfill",
            tier=3,
            hyperparameters={"max_depth": 2, "eta": 0.01, "num_boost_round": 6000},
            resources={"workers": 2, "cpus_per_worker": 0.5, "memory_gb_per_worker": 0.5},
            checkpoint_every_steps=1000,
            engine="ray_train",  # the notice reaches both workers of a group (the other jobs here train in one process)
        ),
    )
    wait_for(lambda: checkpointed(controller, settings, low.job_id), JOB_TIMEOUT_S, "no checkpoint yet")  # boosting
    whole_cluster = {"workers": 2, "cpus_per_worker": 1, "memory_gb_per_worker": 0.5}
    urgent = submit(controller, spec(raw_uri, name="eta_minutes_urgent", resources=whole_cluster))
    done_urgent = wait(controller, urgent.job_id, JOB_TIMEOUT_S)
    assert done_urgent.state is JobState.SUCCEEDED, done_urgent.message
    done = wait(controller, low.job_id, JOB_TIMEOUT_S)
    assert done.state is JobState.SUCCEEDED, done.message

    status = resumed_at_the_notice(controller, settings, low.job_id, f"preempted by {urgent.job_id}", 6000)
    assert status["outcome"]["engine"] == "ray_train"
    messages = [e["message"] for e in status["events"]]
    assert f"preemption notice sent (by {urgent.job_id}); checkpointing, stopped after 120s otherwise" in messages
    requeued = f"attempt 1 preempted; queued to resume: checkpointed on the notice (preempted by {urgent.job_id})"
    assert messages.count(requeued) == 1
    assert not any("stopped" in m and "grace" in m for m in messages)
    # The tier-1 job took the cluster; the preempted one started again only once it was done.
    urgent_status = ray.get(controller.status.remote(urgent.job_id))
    assert event_at(status, f"{low.job_id}-attempt-2 submitted") >= event_at(urgent_status, "registered ")
    assert ControlNotice(checkpoint_root(settings), low.job_id, min_interval_s=0).seconds_left() is None  # consumed
    ray_jobs = [j.submission_id or "" for j in JobSubmissionClient(job_server).list_jobs()]
    assert sorted(j for j in ray_jobs if j.startswith(low.job_id)) == [f"{low.job_id}-attempt-{n}" for n in (1, 2)]
    assert_registered(settings, done_urgent, "eta_minutes_urgent")
    assert_registered(settings, done, "eta_minutes_backfill")


def test_an_elastic_job_scaled_up_while_running_checkpoints_and_restarts_at_once_with_more_workers(
    controller: Any, settings: Settings, raw_uri: str, job_server: str
) -> None:
    """The cluster (2 CPUs, 1.8 outside the tier-1 headroom) holds the blocker (1 CPU) and one of the elastic job's
    workers (0.5 CPU each), not its second: it gets that once the blocker is gone."""
    blocker = submit(
        controller,
        spec(raw_uri, name="eta_minutes_blocker", tier=2, hyperparameters={"max_depth": 2, "num_boost_round": 10**6},
             resources={"workers": 1, "cpus_per_worker": 1, "memory_gb_per_worker": 0.5}),
    )  # fmt: skip
    wait_while(controller, blocker.job_id, ("pending",))
    elastic = submit(
        controller,
        spec(
            raw_uri,
            name="eta_minutes_elastic",
            tier=2,
            hyperparameters={"max_depth": 2, "eta": 0.01, "num_boost_round": 40000},  # ~1 ms a round: room to resize
            resources={"workers": 2, "min_workers": 1, "cpus_per_worker": 0.5, "memory_gb_per_worker": 0.5},
            checkpoint_every_steps=1000,
        ),
    )
    wait_for(lambda: checkpointed(controller, settings, elastic.job_id), JOB_TIMEOUT_S, "no checkpoint yet")
    ray.get(controller.cancel.remote(blocker.job_id))  # the blocker ends: its CPU goes to the elastic job
    done = wait(controller, elastic.job_id, JOB_TIMEOUT_S)
    assert done.state is JobState.SUCCEEDED, done.message

    status = resumed_at_the_notice(controller, settings, elastic.job_id, "scaling to 2 workers", 40000)
    messages = [e["message"] for e in status["events"]]
    first, second = (f"{elastic.job_id}-attempt-{n}" for n in (1, 2))
    assert any(m.startswith(f"{first} submitted to local") and m.endswith(", 1 workers") for m in messages)
    assert "scaling to 2 workers: checkpointing to restart wider, stopped after 120s otherwise" in messages
    restart = "attempt 1 preempted; restarting wider: checkpointed on the notice (scaling to 2 workers)"
    assert messages.count(restart) == 1
    assert any(m.startswith(f"{second} submitted to local") and m.endswith(", 2 workers") for m in messages)
    assert not any("queued" in m or "grace" in m for m in messages[1:])  # restarted at once, never re-queued
    client = JobSubmissionClient(job_server)
    assert client.get_job_info(second).entrypoint.endswith("--attempt 2 --workers 2")
    ray_jobs = [j.submission_id or "" for j in client.list_jobs()]
    assert sorted(j for j in ray_jobs if j.startswith(elastic.job_id)) == [first, second]
    assert ControlNotice(checkpoint_root(settings), elastic.job_id, min_interval_s=0).seconds_left() is None
    assert record_of(ray.get(controller.status.remote(blocker.job_id))).state is JobState.CANCELLED
    assert_registered(settings, done, "eta_minutes_elastic")


@pytest.fixture(scope="module")
def sentences_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A text label source: the tiny LM's trip sentences, one per trip of a driver on the day after the snapshot."""
    from ma_ray.training.trainers.tiny_lm import tiny_corpus

    root = tmp_path_factory.mktemp("sentences")
    rows = tiny_corpus(240, seed=1)
    stamps = [datetime(2026, 1, 7, tzinfo=UTC) + timedelta(minutes=5 * i) for i in range(len(rows))]
    table = pa.table(
        {
            "driver_id": [f"d{i % 50:05d}" for i in range(len(rows))],
            "requested_at": pa.array(stamps, pa.timestamp("us", "UTC")),
            "text": [r["text"] for r in rows],
        }
    )
    (root / "sentences").mkdir()
    pq.write_table(table, root / "sentences" / "part-0.parquet")
    return str(root)


def test_deepspeed_job_fails_once_resumes_from_its_checkpoint_and_registers(
    controller: Any, settings: Settings, raw_uri: str, sentences_uri: str
) -> None:
    label = {
        "uri": sentences_uri,
        "table": "sentences",
        "timestamp": "requested_at",
        "name": "length",
        "value": "len(@basis:text)",
        "columns": {"driver_id": "driver_id"},
        "text": "text",
    }
    job = submit(
        controller,
        spec(
            raw_uri,
            name="trip_notes_lm",
            framework="deepspeed",
            tier=4,
            transforms={},
            label=label,
            hyperparameters={"epochs": 1, "batch_size": 8, "seq_len": 32},
            checkpoint_every_steps=5,
        ),
        FaultInjection(fail_at_step=12),
    )
    done = wait(controller, job.job_id, JOB_TIMEOUT_S)
    assert done.state is JobState.SUCCEEDED, done.message
    status = assert_failed_once_then_resumed(controller, job.job_id)
    assert status["outcome"]["final_step"] == 24  # 192 training rows / batches of 8
    assert_registered(settings, done, "trip_notes_lm")


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ma-ray")
    add_commands(parser.add_subparsers(dest="noun", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_submits_lists_shows_logs_and_cancels(
    controller: Any, raw_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**spec(raw_uri).model_dump(mode="json"), "data": {"snapshot": "2026-01-01"}}))
    assert run_cli("jobs", "submit", str(bad)) == 1
    refused = capsys.readouterr()
    assert "job spec refused, nothing was submitted" in refused.err and "missing snapshot" in refused.err
    good = tmp_path / "good.yaml"
    good.write_text(spec(raw_uri, name="eta_cli").to_yaml())
    assert run_cli("jobs", "submit", str(good), "--json") == 0
    job_id = json.loads(capsys.readouterr().out)["job_id"]
    assert run_cli("jobs", "cancel", job_id) == 0
    assert job_id in capsys.readouterr().out
    ended = wait_while(controller, job_id, tuple(s.value for s in JobState if not s.terminal))
    assert ended in ("cancelled", "succeeded"), ended
    assert run_cli("jobs", "list") == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["job", "framework", "tier", "state", "attempt", "cluster", "model",
                                             "message"]  # fmt: skip
    assert job_id in table
    assert run_cli("jobs", "status", job_id) == 0
    assert f"{job_id}: cancelled" in capsys.readouterr().out
    assert run_cli("jobs", "logs", job_id, "--json") == 0
    logs = json.loads(capsys.readouterr().out)
    assert set(logs) <= {"1"}
    assert run_cli("jobs", "list", "--json") == 0
    assert job_id in [j["job_id"] for j in json.loads(capsys.readouterr().out)]


def test_labels_are_the_windows_rows_that_pass_the_filter(raw_uri: str) -> None:
    labels = build_labels(spec(raw_uri))
    assert labels.column_names == ["driver_id", "request_ts", "requested_at", "minutes"]
    trips = read_raw(raw_uri, "trips").to_table(filter=ds.field("date") == "2026-01-07").to_pandas()
    done = trips[trips.status == "completed"].sort_values("requested_at", kind="stable")
    frame = labels.to_pandas()
    assert len(frame) == len(done) > 0
    assert frame.minutes.tolist() == pytest.approx((done.duration_s / 60).tolist())
    assert sorted(frame.driver_id) == sorted(done.driver_id)


def test_a_controller_with_other_stores_is_not_shared(
    controller: Any, settings: Settings, clusters: list[ClusterSpec], tmp_path: Path
) -> None:
    """Callers whose settings name other stores get an error, never a controller writing somewhere else."""
    from actors.job_controller import ControllerConflictError

    assert job_controller(settings, clusters) == controller
    with pytest.raises(ControllerConflictError, match="other settings"):
        job_controller(settings.replaced(state_dir=tmp_path), clusters)
