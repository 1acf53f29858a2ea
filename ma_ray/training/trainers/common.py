"""The Ray Train glue every framework trainer shares, driver side and worker side (the rest has its own module:
`worker_spec`, `run_log`, `faults`, `preemption`, `checkpointing`).

Checkpoints go through `CheckpointStore` (the source of truth, validated before use); Ray Train runs the worker
group, restarts it on worker loss (``FailureConfig``) and carries the final metrics back. Ray Train's own run
folder is ``<checkpoint_uri>/<run_id>/ray_train`` and holds only a pointer to the store's newest checkpoint (how
the final metrics travel back): the store's checkpoints are what a restarted worker group, or a rerun with the
same ``run_id``, resumes from.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ma_ray.storage import filesystem_and_path
from ma_ray.training.checkpoint_store import CheckpointStore
from ma_ray.training.run import TrainingOutcome, TrainingRun
from ma_ray.training.trainers.checkpointing import Resume
from ma_ray.training.trainers.run_log import RunLog
from ma_ray.training.trainers.worker_spec import WorkerSpec

SUCCEEDED, PREEMPTED = "succeeded", "preempted"
RAY_TRAIN_DIR = "ray_train"


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
    """The run's datasets as Ray Datasets (an Arrow table becomes one), by name."""
    import pyarrow as pa
    import ray.data

    named = {"train": run.train} | ({"valid": run.valid} if run.valid is not None else {})
    return {k: ray.data.from_arrow(v) if isinstance(v, pa.Table) else v for k, v in named.items()}


def outcome(framework: str, reported: dict[str, Any] | None, store: CheckpointStore, model: Any,
            **extra: Any) -> TrainingOutcome:  # fmt: skip
    """Turn rank 0's last report (a Ray Train ``Result``'s metrics, or the single-process engine's `summary`) into
    the outcome."""
    reported = dict(reported or {})
    manifests, _ = store.manifests()
    history = tuple(reported.pop("history", ()))
    lines = tuple(RunLog.read(store))
    status, resumed, final_step = reported.pop("status"), reported.pop("resumed_from_step"), reported.pop("final_step")
    metrics = {k: float(v) for k, v in reported.items() if isinstance(v, int | float)}
    checkpoints = tuple(store.uri(m.checkpoint_id) for m in sorted(manifests, key=lambda m: m.order))
    return TrainingOutcome(status, framework, model, metrics, resumed, int(final_step), checkpoints, history, lines,
                           **extra)  # fmt: skip
