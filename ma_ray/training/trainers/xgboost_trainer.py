"""XGBoost on one of two engines, picked by the run (``TrainingRun.engine``): Ray Train V2
(``ray.train.xgboost.XGBoostTrainer`` with a per-worker loop), or one process (`xgboost_local`: a single Ray
task holding every CPU the run asked for). Boosting and checkpoints are the same on both (`xgboost_boosting`).

On Ray Train the driver splits each dataset into one materialized Ray Data shard per worker; each worker builds a
``DMatrix`` from its shard and the workers boost together over XGBoost's collective.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ma_ray.engine import Engine
from ma_ray.training.run import TrainingOutcome, TrainingRun
from ma_ray.training.trainers.checkpointing import broadcast_from_rank_zero, final_checkpoint
from ma_ray.training.trainers.common import datasets, outcome, report_final, run_config, scaling_config
from ma_ray.training.trainers.worker_spec import WorkerSpec
from ma_ray.training.trainers.xgboost_boosting import MODEL_FILE, Worker, dmatrix


def _shard_columns(spec: WorkerSpec, shard: Any) -> dict[str, list[Any]]:
    """A Ray Data shard's columns as whole-block numpy chunks (no pandas copy of the shard)."""
    batches = list(shard.iter_batches(batch_size=None, batch_format="numpy"))
    return {name: [b[name] for b in batches] for name in (*spec.feature_columns, spec.label_column)}


def shards(run: TrainingRun) -> dict[str, list[Any]]:
    """Each dataset split into one materialized Ray Data shard per worker, in the driver: a DMatrix holds its
    whole shard in memory anyway, and reading a shard's blocks straight from the object store skips Ray Train's
    streaming-split coordinator (about 3 s of a 1M-row run on 2 cores, bench/training_xgboost.py)."""
    return {name: data.split(run.num_workers, equal=True) for name, data in datasets(run).items()}


def _agree(value: Any) -> Any:
    """Rank 0's ``value`` on every rank, over XGBoost's own collective (the one boosting syncs through)."""
    import xgboost as xgb

    if not xgb.collective.is_distributed():
        return value
    return xgb.collective.broadcast((value,), 0)[0]  # wrapped: the root may not broadcast None


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: resume, boost the remaining rounds, checkpoint, report."""
    import ray.train

    spec: WorkerSpec = config["spec"]
    rank = ray.train.get_context().get_world_rank()
    worker = Worker(spec, rank, _agree, in_ray_train=True)
    resumed, booster, state = worker.restore(broadcast_from_rank_zero)  # XGBoost's collective is not up yet
    loaded = time.time()
    mine = {name: split[rank] for name, split in config["shards"].items()}
    dtrain = dmatrix(spec, _shard_columns(spec, mine["train"]))
    evals = [(dmatrix(spec, _shard_columns(spec, mine["valid"])), "valid")] if spec.has_valid else [(dtrain, "train")]
    report = worker.boost(resumed, booster, state, dtrain, evals, loaded)
    report["phase_worker_start_s"] = worker.entered - config["submitted_at"]
    report_final(rank, report, worker.store)


def _fit_on_ray_train(run: TrainingRun) -> dict[str, Any]:
    from ray.train.xgboost import XGBoostTrainer

    spec = WorkerSpec.of(run)
    started = time.monotonic()
    parts = shards(run)
    split_s = time.monotonic() - started
    trainer = XGBoostTrainer(
        train_loop,
        train_loop_config={"spec": spec, "submitted_at": time.time(), "shards": parts},
        scaling_config=scaling_config(run),
        run_config=run_config(spec, run.max_failures),
    )
    return {**(trainer.fit().metrics or {}), "phase_split_s": split_s}


def fit(run: TrainingRun) -> TrainingOutcome:
    """Train on the run's engine; the model is the final ``xgboost.Booster``."""
    import xgboost as xgb

    started = time.monotonic()
    if run.engine is Engine.LOCAL:
        from ma_ray.training.trainers.xgboost_local import fit_in_one_process

        reported = fit_in_one_process(run)
    else:
        reported = _fit_on_ray_train(run)
    returned = time.time()
    store = WorkerSpec.of(run).store()
    with tempfile.TemporaryDirectory(prefix="ma_ray_model_") as tmp:
        final_checkpoint(store, Path(tmp))
        booster = xgb.Booster(model_file=str(Path(tmp) / MODEL_FILE))
    done = outcome("xgboost", reported, store, booster)
    done.metrics["phase_report_to_driver_s"] = returned - done.metrics.pop("reported_at", returned)
    done.metrics["phase_driver_model_load_s"] = time.time() - returned
    done.metrics["wall_time_s"] = time.monotonic() - started
    return done
