"""Checkpoints from inside a worker group: when one is due, resuming from the newest valid one, saving with its
timing, and the final one for the driver."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ma_ray.training.checkpoint_policy import (
    CheckpointManifest,
    PreemptionAction,
    on_preemption_notice,
)
from ma_ray.training.checkpoint_store import CheckpointStore
from ma_ray.training.trainers.run_log import RunLog
from ma_ray.training.trainers.worker_spec import WorkerSpec


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


@dataclass(frozen=True)
class Resume:
    """The checkpoint a worker restored (None: fresh start) and its local copy."""

    manifest: CheckpointManifest | None
    local_dir: Path | None

    @property
    def step(self) -> int | None:
        return None if self.manifest is None else self.manifest.step


def broadcast_from_rank_zero(value: Any) -> Any:
    """Rank 0's ``value`` on every rank of a Ray Train worker group."""
    import ray.train.collective

    return ray.train.collective.broadcast_from_rank_zero(value)


def resume(store: CheckpointStore, rank: int, into: Path, log: RunLog,
           share: Callable[[Any], Any] = broadcast_from_rank_zero) -> Resume:  # fmt: skip
    """Rank 0 picks the newest valid checkpoint and tells the others which (``share``: rank 0's value on every
    rank; Ray Train's broadcast by default); every rank restores it into ``into``. Logs 'Resumed from step N'
    (and every checkpoint rejected on the way)."""
    chosen_id: str | None = None
    if rank == 0:
        selection = store.latest_valid()
        for checkpoint_id, reasons in selection.rejected.items():
            log.add(f"Rejected checkpoint {checkpoint_id}: {'; '.join(reasons)}")
        chosen_id = selection.chosen.checkpoint_id if selection.chosen else None
    chosen_id = share(chosen_id)
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


def final_checkpoint(store: CheckpointStore, into: Path) -> CheckpointManifest:
    """Restore the run's newest valid checkpoint (every run ends on one) into ``into`` for the driver."""
    chosen = store.latest_valid().chosen
    if chosen is None:
        raise RuntimeError(f"run left no valid checkpoint under {store.root}")
    store.restore(chosen, into)
    return chosen
