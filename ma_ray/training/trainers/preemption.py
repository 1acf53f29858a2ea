"""The preemption notice protocol: the job controller leaves a notice in the run's folder (a preemption, a resize,
with a deadline); rank 0 reads it every few steps and every rank agrees on it, as on Ray Train's own notice and
a simulated one."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import pyarrow.fs as pafs

from ma_ray.storage import filesystem_and_path
from ma_ray.training.trainers.faults import FaultInjector

PREEMPTION_POLL_STEPS = 10  # Ray Train polls nodes every 5 s and gives 120 s of notice: ample unless steps take >10 s
NOTICE_MARKER = "_control/preempt"  # under the run's folder: the job controller's preemption notice
NOTICE_POLL_S = 1.0  # rank 0 stats the marker at most this often, so slow storage (S3) never slows short steps


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
                            agree: Callable[[Any], Any], notice_every: int = PREEMPTION_POLL_STEPS,
                            in_ray_train: bool = True) -> float | None:  # fmt: skip
    """Seconds until the worker group must stop, when a notice arrived (simulated, the job controller's, or Ray
    Train's own); None otherwise. Every rank must call it at every step with the same ``step``: the controller's
    notice is read by rank 0 every ``notice_every`` steps and shared with ``agree`` (rank 0's value on every
    rank, a collective); Ray Train is asked every `PREEMPTION_POLL_STEPS` steps (a collective too), unless the
    run is not ``in_ray_train`` (the single-process engine: a lost node kills its task, which Ray retries)."""
    if faults.simulated_notice(step, rank):
        return math.inf
    if step % notice_every == 0:
        left: float | None = agree(notice.seconds_left() if rank == 0 else None)
        if left is not None:
            return left
    if not in_ray_train or step % PREEMPTION_POLL_STEPS:
        return None
    import ray.train

    info = ray.train.get_preemption_info()
    if info is None:
        return None
    return math.inf if info.deadline_ms is None else info.deadline_ms / 1000 - time.time()
