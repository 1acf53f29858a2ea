"""Distributed XGBoost on Ray Train V2 (``ray.train.xgboost.XGBoostTrainer`` with a per-worker loop).

A step is a boosting round. The driver splits each dataset into one materialized Ray Data shard per worker; each
worker builds a ``DMatrix`` from its shard. The booster is the same on every rank after each round, so rank 0
alone writes checkpoints: ``model.ubj`` (the booster, which is the whole model and optimizer state of boosting)
and ``training_state.json`` (round, best metric, rank 0's random states). A resumed run continues boosting from
the checkpointed booster.

Params: any XGBoost parameter, plus ``num_boost_round`` (default 100). ``nthread`` defaults to the worker's CPUs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ma_ray.training.checkpoint_state import TrainingState, capture_rng, read_state, restore_rng, write_state
from ma_ray.training.checkpoint_store import CheckpointStore
from ma_ray.training.run import TrainingOutcome, TrainingRun
from ma_ray.training.trainers.checkpointing import CheckpointClock, final_checkpoint, resume, timed_save
from ma_ray.training.trainers.common import (
    PREEMPTED,
    SUCCEEDED,
    datasets,
    outcome,
    report_final,
    run_config,
    scaling_config,
    summary,
)
from ma_ray.training.trainers.faults import FaultInjector
from ma_ray.training.trainers.preemption import ControlNotice, preemption_seconds_left
from ma_ray.training.trainers.run_log import RunLog
from ma_ray.training.trainers.worker_spec import WorkerSpec

MODEL_FILE = "model.ubj"
DEFAULT_ROUNDS = 100
_MAXIMIZED = ("auc", "aucpr", "map", "ndcg", "pre")


def booster_params(spec: WorkerSpec) -> tuple[dict[str, Any], int]:
    """XGBoost params for one worker, and the number of boosting rounds."""
    params = {"objective": "reg:squarederror", "tree_method": "hist", **spec.params}
    rounds = int(params.pop("num_boost_round", DEFAULT_ROUNDS))
    params.setdefault("nthread", max(1, int(spec.cpus_per_worker)))
    return params, rounds


def _dmatrix(spec: WorkerSpec, shard: Any) -> Any:
    """The worker's shard as a DMatrix, built from whole-block numpy batches (no pandas copy of the shard)."""
    import numpy as np
    import xgboost as xgb

    features, label = list(spec.feature_columns), spec.label_column
    batches = list(shard.iter_batches(batch_size=None, batch_format="numpy"))
    if not batches:  # more workers than rows
        return xgb.DMatrix(np.empty((0, len(features))), label=np.empty(0), feature_names=features)
    x = np.column_stack([np.concatenate([b[f] for b in batches]) for f in features])
    y = np.concatenate([b[label] for b in batches])
    return xgb.DMatrix(x, label=y, feature_names=features, nthread=max(1, int(spec.cpus_per_worker)))


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


class _Loop:
    """Per-round bookkeeping of one worker: history, faults, preemption, checkpoints (rank 0 writes)."""

    def __init__(self, spec: WorkerSpec, store: CheckpointStore, faults: FaultInjector, log: RunLog, rank: int,
                 state: TrainingState) -> None:  # fmt: skip
        self.spec, self.store, self.faults, self.log, self.rank = spec, store, faults, log, rank
        self.state = state
        self.clock = CheckpointClock(spec, last_step=state.step if state.step else None)
        self.notice = ControlNotice(spec.checkpoint_uri, spec.run_id)
        self.history: list[dict[str, float]] = []
        self.preempted = False
        self.metric: dict[str, float] = {}

    def callback(self) -> Any:
        import xgboost as xgb

        loop = self

        class _Callback(xgb.callback.TrainingCallback):
            def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict[str, Any]) -> bool:
                return loop.after_round(model, evals_log)

        return _Callback()

    def _record(self, step: int, evals_log: dict[str, Any]) -> None:
        named = {f"{data}_{metric}": float(values[-1]) for data, metrics in evals_log.items() for metric, values in
                 metrics.items()}  # fmt: skip
        self.metric = named
        self.history.append({"step": float(step), **named})
        if named:
            key = next(iter(k for k in named if k.startswith("valid_")), next(iter(named)))
            value, best = named[key], self.state.best_metric
            better = best is None or (value > best if key.endswith(_MAXIMIZED) else value < best)
            self.state = TrainingState(step, step, value if better else best)
        else:
            self.state = TrainingState(step, step, self.state.best_metric)

    def after_round(self, model: Any, evals_log: dict[str, Any]) -> bool:
        """True stops boosting (a preemption notice); every rank decides the same."""
        step = model.num_boosted_rounds()
        self._record(step, evals_log)
        self.faults.maybe_kill(step, self.rank)
        # The controller's notice every round (a round can take minutes): a stat on rank 0 at most every
        # NOTICE_POLL_S and one broadcast (~0.15 ms on one host), small beside the round's own allreduces.
        seconds_left = preemption_seconds_left(self.faults, self.notice, step, self.rank, _agree, notice_every=1)
        if seconds_left is not None:
            save, line = self.clock.on_notice(step, seconds_left, self.notice.reason)
            self.log.add(line)
            if save and self.rank == 0:
                self.save(model)
            self.preempted = True
            return True
        if self.rank == 0 and self.clock.due(step):
            self.save(model)
        return False

    def save(self, model: Any) -> None:
        def write(directory: Path) -> None:
            model.save_model(str(directory / MODEL_FILE))
            write_state(directory, self.state, [capture_rng()])

        checkpoint_id, took = timed_save(self.store, write, self.state.step, self.state.epoch)
        self.clock.saved(self.state.step, took)
        self.log.add(f"Checkpoint {checkpoint_id} at step {self.state.step} ({took:.3f}s)")


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: resume, boost the remaining rounds, checkpoint, report."""
    import ray.train
    import xgboost as xgb

    spec: WorkerSpec = config["spec"]
    entered = time.time()  # wall clock, comparable with the driver's: the phases of fit() in the outcome
    rank = ray.train.get_context().get_world_rank()
    faults = FaultInjector(spec)
    store = spec.store()
    log = RunLog(store, rank)
    booster, state = None, TrainingState()
    with tempfile.TemporaryDirectory(prefix="ma_ray_resume_") as tmp:
        resumed = resume(store, rank, Path(tmp), log)
        if resumed.local_dir is not None:
            booster = xgb.Booster(model_file=str(resumed.local_dir / MODEL_FILE))
            saved = read_state(resumed.local_dir)
            state = saved.training
            rng = saved.rng_for(rank)
            if rng is not None:
                restore_rng(rng)
    params, rounds = booster_params(spec)
    loaded = time.time()
    mine = {name: split[rank] for name, split in config["shards"].items()}
    dtrain = _dmatrix(spec, mine["train"])
    evals = [(_dmatrix(spec, mine["valid"]), "valid")] if spec.has_valid else [(dtrain, "train")]
    loop = _Loop(spec, store, faults, log, rank, state)
    started = time.monotonic()
    boosting_from = time.time()
    if rounds > state.step:
        booster = xgb.train(params, dtrain, num_boost_round=rounds - state.step, evals=evals, xgb_model=booster,
                            callbacks=[loop.callback()], verbose_eval=False)  # fmt: skip
    boosted = time.time()
    if rank == 0 and not loop.preempted and loop.clock.last_step != loop.state.step:
        loop.save(booster)
    status = PREEMPTED if loop.preempted else SUCCEEDED
    metrics = {
        **loop.metric,
        "boosting_s": time.monotonic() - started,  # this attempt's rounds and checkpoints
        "phase_worker_start_s": entered - config["submitted_at"],
        "phase_resume_s": loaded - entered,
        "phase_shard_to_dmatrix_s": boosting_from - loaded,
        "phase_final_checkpoint_s": time.time() - boosted,
        "reported_at": time.time(),
    }
    report_final(rank, summary(status, resumed, loop.state.step, loop.history, metrics), store)


def fit(run: TrainingRun) -> TrainingOutcome:
    """Train with ``run.num_workers`` Ray Train workers; the model is the final ``xgboost.Booster``."""
    import xgboost as xgb
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
    result = trainer.fit()
    returned = time.time()
    store = spec.store()
    with tempfile.TemporaryDirectory(prefix="ma_ray_model_") as tmp:
        final_checkpoint(store, Path(tmp))
        booster = xgb.Booster(model_file=str(Path(tmp) / MODEL_FILE))
    done = outcome("xgboost", result, store, booster)
    done.metrics["phase_split_s"] = split_s
    done.metrics["phase_report_to_driver_s"] = returned - done.metrics.pop("reported_at", returned)
    done.metrics["phase_driver_model_load_s"] = time.time() - returned
    done.metrics["wall_time_s"] = time.monotonic() - started
    return done
