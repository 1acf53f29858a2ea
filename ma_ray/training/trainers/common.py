"""What every framework trainer shares, driver side and worker side.

Checkpoints go through `CheckpointStore` (the source of truth, validated before use); Ray Train runs the worker
group, restarts it on worker loss (``FailureConfig``) and carries the final metrics back. Ray Train's own run
folder is ``<checkpoint_uri>/<run_id>/ray_train`` and holds only a pointer to the store's newest checkpoint (how
the final metrics travel back): the store's checkpoints are what a restarted worker group, or a rerun with the
same ``run_id``, resumes from.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from ma_ray.storage import filesystem_and_path
from ma_ray.training.checkpoint_policy import (
    CheckpointManifest,
    CheckpointPolicy,
    PreemptionAction,
    on_preemption_notice,
)
from ma_ray.training.checkpoint_store import CheckpointStore
from ma_ray.training.run import FaultInjection, TrainingOutcome, TrainingRun

logger = logging.getLogger("ma_ray.training")

SUCCEEDED, PREEMPTED = "succeeded", "preempted"
RAY_TRAIN_DIR = "ray_train"
LOG_DIR = "_log"
PREEMPTION_POLL_STEPS = 10  # Ray Train polls nodes every 5 s and gives 120 s of notice: ample unless steps take >10 s
NOTICE_MARKER = "_control/preempt"  # under the run's folder: the job controller's preemption notice
NOTICE_POLL_S = 1.0  # rank 0 stats the marker at most this often, so slow storage (S3) never slows short steps


@dataclass(frozen=True)
class WorkerSpec:
    """The picklable part of a `TrainingRun` that each worker gets (datasets travel as Ray Data shards)."""

    run_id: str
    checkpoint_uri: str
    label_column: str
    feature_columns: tuple[str, ...]
    params: dict[str, Any]
    estimated_duration_s: float
    policy: CheckpointPolicy
    checkpoint_every_steps: int | None
    faults: FaultInjection
    has_valid: bool
    text_column: str | None
    use_gpu: bool
    cpus_per_worker: float

    @classmethod
    def of(cls, run: TrainingRun) -> WorkerSpec:
        return cls(
            run.run_id, run.checkpoint_uri, run.label_column, tuple(run.feature_columns), dict(run.params),
            run.estimated_duration_s, run.checkpoint_policy, run.checkpoint_every_steps, run.faults,
            run.valid is not None, run.text_column, run.use_gpu, run.cpus_per_worker,
        )  # fmt: skip

    def store(self) -> CheckpointStore:
        return CheckpointStore(self.checkpoint_uri, self.run_id, self.policy)


class FaultInjector:
    """The test hooks of one attempt. Markers are read once, before any collective call, so every rank sees
    the same answer; the fault's rank writes its marker when it fires, so the next attempt runs clean."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.fs, base = filesystem_and_path(spec.faults.marker_uri or f"{spec.checkpoint_uri}/{spec.run_id}/_faults")
        self.base = base
        self.fail_fired = self._fired("fail")
        self.preempt_fired = self._fired("preempt")

    def _marker(self, kind: str) -> str:
        return f"{self.base}-{kind}" if self.spec.faults.marker_uri else f"{self.base}/{kind}"

    def _fired(self, kind: str) -> bool:
        fired: bool = self.fs.get_file_info(self._marker(kind)).type == pafs.FileType.File
        return fired

    def _fire(self, kind: str) -> None:
        marker = self._marker(kind)
        self.fs.create_dir(marker.rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(marker) as out:
            out.write(str(time.time()).encode())

    def maybe_kill(self, step: int, rank: int) -> None:
        """At ``fail_at_step``, rank 0 dies like a lost worker (once per run)."""
        if rank == 0 and not self.fail_fired and self.spec.faults.fail_at_step == step:
            self._fire("fail")
            logger.warning("fault injection: killing rank 0 at step %d", step)
            os._exit(17)

    def simulated_notice(self, step: int, rank: int) -> bool:
        """True at ``preempt_at_step`` (once per run): a preemption notice as the node would send it."""
        if self.preempt_fired or self.spec.faults.preempt_at_step != step:
            return False
        if rank == 0:
            self._fire("preempt")
        return True


def notice_path(checkpoint_uri: str, run_id: str) -> tuple[pafs.FileSystem, str]:
    """Where the job controller leaves a preemption notice for run ``run_id``."""
    fs, base = filesystem_and_path(checkpoint_uri)
    return fs, f"{base}/{run_id}/{NOTICE_MARKER}"


def send_preemption_notice(checkpoint_uri: str, run_id: str, payload: dict[str, Any]) -> None:
    """Leave the notice (the controller's side). ``payload["deadline"]`` (epoch seconds), when there, is when the
    controller stops the attempt anyway; ``payload["reason"]`` goes into the trainer's log line; the rest (which
    attempt, when) is for people."""
    fs, path = notice_path(checkpoint_uri, run_id)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(json.dumps(payload).encode())


def clear_preemption_notice(checkpoint_uri: str, run_id: str) -> None:
    """Remove the notice, if any, so the run's next attempt does not stop on an older attempt's notice."""
    fs, path = notice_path(checkpoint_uri, run_id)
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)


class ControlNotice:
    """The job controller's preemption notice as one rank reads it (rank 0: the caller shares the answer).
    ``reason``: why the controller sent it (a preemption, a resize), once read; None if the notice gave none."""

    def __init__(self, checkpoint_uri: str, run_id: str, min_interval_s: float = NOTICE_POLL_S) -> None:
        self.fs, self.path = notice_path(checkpoint_uri, run_id)
        self.min_interval_s = min_interval_s
        self.checked_at = -math.inf
        self.reason: str | None = None

    def seconds_left(self) -> float | None:
        """Seconds until the controller's deadline once a notice is there (inf: no deadline); None otherwise, and
        None without looking when the last look was under ``min_interval_s`` ago."""
        now = time.monotonic()
        if now - self.checked_at < self.min_interval_s:
            return None
        self.checked_at = now
        if self.fs.get_file_info(self.path).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(self.path) as stream:
            raw = stream.read()
        try:
            payload = json.loads(raw)
        except ValueError:  # caught mid-write: the marker's presence is the notice
            payload = {}
        deadline, self.reason = payload.get("deadline"), payload.get("reason")
        return math.inf if deadline is None else float(deadline) - time.time()


def preemption_seconds_left(faults: FaultInjector, notice: ControlNotice, step: int, rank: int,
                            agree: Callable[[Any], Any],
                            notice_every: int = PREEMPTION_POLL_STEPS) -> float | None:  # fmt: skip
    """Seconds until the worker group must stop, when a notice arrived (simulated, the job controller's, or Ray
    Train's own); None otherwise. Every rank must call it at every step with the same ``step``: the controller's
    notice is read by rank 0 every ``notice_every`` steps and shared with ``agree`` (rank 0's value on every
    rank, a collective); Ray Train is asked every `PREEMPTION_POLL_STEPS` steps (a collective too)."""
    if faults.simulated_notice(step, rank):
        return math.inf
    if step % notice_every == 0:
        left: float | None = agree(notice.seconds_left() if rank == 0 else None)
        if left is not None:
            return left
    if step % PREEMPTION_POLL_STEPS:
        return None
    import ray.train

    info = ray.train.get_preemption_info()
    if info is None:
        return None
    return math.inf if info.deadline_ms is None else info.deadline_ms / 1000 - time.time()


@dataclass
class CheckpointClock:
    """When a checkpoint is due: every ``every_steps`` steps, or once the policy's interval has passed."""

    spec: WorkerSpec
    last_s: float = field(default_factory=time.monotonic)
    last_step: int | None = None
    save_s: float = 0.0  # how long the last save took: what a preemption notice must leave time for

    def due(self, step: int) -> bool:
        every = self.spec.checkpoint_every_steps
        if every and step % every == 0:
            return True
        return self.spec.policy.is_due(time.monotonic(), self.last_s, self.spec.estimated_duration_s)

    def saved(self, step: int, took_s: float) -> None:
        self.last_s, self.last_step, self.save_s = time.monotonic(), step, took_s

    def on_notice(self, step: int, seconds_left: float, reason: str | None = None) -> tuple[bool, str]:
        """Whether to checkpoint now on a preemption notice (`on_preemption_notice`), and the log line (with the
        notice's ``reason`` when it gave one)."""
        action = on_preemption_notice(step, self.last_step, seconds_left, self.save_s)
        why = f" ({reason})" if reason else ""
        return action is PreemptionAction.CHECKPOINT_NOW, f"Preemption notice at step {step}: {action.value}{why}"


class RunLog:
    """The run's log lines that outlive a worker: rank 0 rewrites ``<run>/_log/<attempt>.log`` on every line, so a
    killed attempt leaves what it did. The driver reads every attempt's file into ``TrainingOutcome.log_lines``."""

    def __init__(self, store: CheckpointStore, rank: int) -> None:
        self.store, self.rank = store, rank
        self.path = f"{store.root}/{LOG_DIR}/{time.time_ns():x}.log"
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        logger.info(line)
        if self.rank != 0:
            return
        self.lines.append(line)
        self.store.fs.create_dir(self.path.rsplit("/", 1)[0], recursive=True)
        with self.store.fs.open_output_stream(self.path) as out:
            out.write("\n".join(self.lines).encode())

    @staticmethod
    def read(store: CheckpointStore) -> list[str]:
        """Every attempt's lines, oldest attempt first."""
        selector = pafs.FileSelector(f"{store.root}/{LOG_DIR}", allow_not_found=True)
        lines: list[str] = []
        for info in sorted(store.fs.get_file_info(selector), key=lambda i: i.base_name):
            with store.fs.open_input_stream(info.path) as stream:
                lines.extend(stream.read().decode().splitlines())
        return lines


@dataclass(frozen=True)
class Resume:
    """The checkpoint a worker restored (None: fresh start) and its local copy."""

    manifest: CheckpointManifest | None
    local_dir: Path | None

    @property
    def step(self) -> int | None:
        return None if self.manifest is None else self.manifest.step


def resume(store: CheckpointStore, rank: int, into: Path, log: RunLog) -> Resume:
    """Rank 0 picks the newest valid checkpoint and tells the others which; every rank restores it into
    ``into``. Logs 'Resumed from step N' (and every checkpoint rejected on the way)."""
    import ray.train.collective

    chosen_id: str | None = None
    if rank == 0:
        selection = store.latest_valid()
        for checkpoint_id, reasons in selection.rejected.items():
            log.add(f"Rejected checkpoint {checkpoint_id}: {'; '.join(reasons)}")
        chosen_id = selection.chosen.checkpoint_id if selection.chosen else None
    chosen_id = ray.train.collective.broadcast_from_rank_zero(chosen_id)
    if chosen_id is None:
        log.add("No valid checkpoint: starting from scratch")
        return Resume(None, None)
    manifest = next(m for m in store.manifests()[0] if m.checkpoint_id == chosen_id)
    store.restore(manifest, into)
    log.add(f"Resumed from step {manifest.step}")
    return Resume(manifest, into)


def timed_save(store: CheckpointStore, write: Callable[[Path], None], step: int, epoch: int) -> tuple[str, float]:
    """Write a checkpoint's files with ``write(dir)``, store them (manifest last), prune; (id, seconds)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ma_ray_ckpt_") as tmp:
        write(Path(tmp))
        manifest = store.save(Path(tmp), step, epoch)
    store.prune()
    return manifest.checkpoint_id, time.monotonic() - started


def summary(status: str, resumed: Resume, final_step: int, history: list[dict[str, float]],
            metrics: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    """What rank 0 reports last, for the driver to turn into a `TrainingOutcome`."""
    return {**metrics, "status": status, "resumed_from_step": resumed.step, "final_step": final_step,
            "history": history}  # fmt: skip


def report_final(rank: int, report: dict[str, Any], store: CheckpointStore) -> None:
    """Every rank's last ``ray.train.report``. Ray Train V2 returns only metrics attached to a checkpoint, so rank 0
    attaches a pointer checkpoint (``pointer.json``: the store's folder) as Ray Train's docs suggest for
    checkpoints it does not hold."""
    import ray.train

    if rank != 0:
        ray.train.report({})
        return
    with tempfile.TemporaryDirectory(prefix="ma_ray_pointer_") as tmp:
        chosen = store.manifests()[0]
        newest = max(chosen, key=lambda m: m.order).checkpoint_id if chosen else None
        Path(tmp, "pointer.json").write_text(json.dumps({"store": store.root, "checkpoint_id": newest}))
        name = f"final-{time.time_ns():x}"
        ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(tmp), checkpoint_dir_name=name)


# Ray Train's controller polls its worker group this often (its default is 2 s, so a finished run was noticed up
# to 2 s late: about a sixth of a 1M-row XGBoost run here). The poll is one cheap actor call per worker.
WORKER_POLL_INTERVAL_S = 0.2


def run_config(spec: WorkerSpec, max_failures: int) -> Any:
    """Ray Train's run settings: its own folder under the run's, and worker-loss retries. Also sets the
    controller's poll interval (``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``, read from the driver's environment) unless
    the caller chose one."""
    import ray.train

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", str(WORKER_POLL_INTERVAL_S))

    fs, base = filesystem_and_path(spec.checkpoint_uri)
    return ray.train.RunConfig(
        name=RAY_TRAIN_DIR,
        storage_path=f"{base}/{spec.run_id}",
        storage_filesystem=fs,
        failure_config=ray.train.FailureConfig(max_failures=max_failures),
        checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
    )


def scaling_config(run: TrainingRun) -> Any:
    import ray.train

    return ray.train.ScalingConfig(
        num_workers=run.num_workers, use_gpu=run.use_gpu, resources_per_worker={"CPU": run.cpus_per_worker}
    )


def datasets(run: TrainingRun) -> dict[str, Any]:
    return {"train": run.train} | ({"valid": run.valid} if run.valid is not None else {})


def outcome(framework: str, result: Any, store: CheckpointStore, model: Any, **extra: Any) -> TrainingOutcome:
    """Turn rank 0's last report (a Ray Train ``Result``) into the outcome."""
    reported = dict(result.metrics or {})
    manifests, _ = store.manifests()
    history = tuple(reported.pop("history", ()))
    lines = tuple(RunLog.read(store))
    status, resumed, final_step = reported.pop("status"), reported.pop("resumed_from_step"), reported.pop("final_step")
    metrics = {k: float(v) for k, v in reported.items() if isinstance(v, int | float)}
    checkpoints = tuple(store.uri(m.checkpoint_id) for m in sorted(manifests, key=lambda m: m.order))
    return TrainingOutcome(status, framework, model, metrics, resumed, int(final_step), checkpoints, history, lines,
                           **extra)  # fmt: skip


def final_checkpoint(store: CheckpointStore, into: Path) -> CheckpointManifest:
    """Restore the run's newest valid checkpoint (every run ends on one) into ``into`` for the driver."""
    chosen = store.latest_valid().chosen
    if chosen is None:
        raise RuntimeError(f"run left no valid checkpoint under {store.root}")
    store.restore(chosen, into)
    return chosen
