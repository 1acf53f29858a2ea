"""XGBoost's single-process engine: one Ray task that holds every CPU the run asked for (workers x CPUs per
worker, so on one node) boosts with that many threads. A Ray Train worker group costs 5-16 s (by day, on 2
cores) before its first round, whatever the data (bench/training_xgboost.py), and its workers split rounds that
one process can do alone on one node; this engine pays a task instead.

The task gets the datasets' Arrow blocks straight from the object store, resumes from the run's newest valid
checkpoint as a Ray Train worker does, and checkpoints and stops on the job controller's notice the same way. A
task whose process dies (a lost node, a killed worker) is retried by Ray up to ``max_failures`` times and resumes
again: what Ray Train's worker-group restart does.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from ma_ray.training.run import TrainingRun
from ma_ray.training.trainers.worker_spec import WorkerSpec
from ma_ray.training.trainers.xgboost_boosting import Worker, dmatrix


def _same(value: Any) -> Any:
    return value  # one process: rank 0's value is everyone's


def _columns(spec: WorkerSpec, blocks: tuple[Any, ...]) -> dict[str, list[Any]]:
    """Arrow blocks' columns as numpy chunks (nulls as NaN, XGBoost's missing value)."""
    names = (*spec.feature_columns, spec.label_column)
    return {n: [chunk.to_numpy(zero_copy_only=False) for b in blocks for chunk in b[n].chunks] for n in names}


def _attempt(spec: WorkerSpec, submitted_at: float, train_blocks: int, *blocks: Any) -> dict[str, Any]:
    """The task: restore, build the DMatrices, boost, report (`summary`) with the attempt's phases."""
    worker = Worker(spec, 0, _same, in_ray_train=False)
    resumed, booster, state = worker.restore(_same)
    loaded = time.time()
    dtrain = dmatrix(spec, _columns(spec, blocks[:train_blocks]))
    valid = blocks[train_blocks:]
    evals = [(dmatrix(spec, _columns(spec, valid)), "valid")] if spec.has_valid else [(dtrain, "train")]
    report = worker.boost(resumed, booster, state, dtrain, evals, loaded)
    report["phase_worker_start_s"] = worker.entered - submitted_at
    return report


def _import_boosting() -> None:
    import xgboost  # noqa: F401

    import ma_ray.training.trainers.xgboost_boosting  # noqa: F401


def warm_up_single_process(cpus: float) -> Any:
    """Start the task's worker process now and import XGBoost in it, while the caller still builds the table: the
    training task reuses the idle worker (Ray's worker pool) instead of starting one (1-2 s here). Returns the
    warm-up task's ref (nothing to wait for)."""
    import ray

    return ray.remote(_import_boosting).options(num_cpus=cpus).remote()


def _arrow_refs(data: Any) -> list[Any]:
    """A dataset's Arrow blocks in the object store: an Arrow table put as it is (Ray Data's ``from_arrow`` would
    run a task for the block's metadata first), a Ray Dataset's own blocks."""
    import pyarrow as pa
    import ray

    if data is None:
        return []
    return [ray.put(data)] if isinstance(data, pa.Table) else list(data.to_arrow_refs())


def fit_in_one_process(run: TrainingRun) -> dict[str, Any]:
    """Boost ``run`` in one Ray task of ``num_workers * cpus_per_worker`` CPUs; rank 0's last report."""
    import ray

    cpus = run.num_workers * run.cpus_per_worker
    spec = dataclasses.replace(WorkerSpec.of(run), cpus_per_worker=cpus)
    started = time.monotonic()
    train, valid = _arrow_refs(run.train), _arrow_refs(run.valid)
    split_s = time.monotonic() - started
    task = ray.remote(_attempt).options(num_cpus=cpus, max_retries=run.max_failures, retry_exceptions=False)
    report: dict[str, Any] = ray.get(task.remote(spec, time.time(), len(train), *train, *valid))
    return {**report, "phase_split_s": split_s}
