"""XGBoost boosting with the seed's checkpoints, the same for both engines (Ray Train's worker group, or the
single-process engine's one task): a step is a boosting round; rank 0 alone writes checkpoints, ``model.ubj`` (the
booster, which is the whole model and optimizer state of boosting) and ``training_state.json`` (round, best
metric, rank 0's random states); a resumed run continues boosting from the checkpointed booster.

Params: any XGBoost parameter, plus ``num_boost_round`` (default 100). ``nthread`` defaults to the worker's CPUs.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ma_ray.training.checkpoint_state import TrainingState, capture_rng, read_state, restore_rng, write_state
from ma_ray.training.checkpoint_store import CheckpointStore
from ma_ray.training.trainers.checkpointing import CheckpointClock, Resume, resume, timed_save
from ma_ray.training.trainers.common import PREEMPTED, SUCCEEDED, summary
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


def dmatrix(spec: WorkerSpec, columns: dict[str, Any]) -> Any:
    """A DMatrix of the run's features and label from ``columns`` (name -> list of numpy chunks)."""
    import numpy as np
    import xgboost as xgb

    features, label = list(spec.feature_columns), spec.label_column
    if not columns[label]:  # more workers than rows
        return xgb.DMatrix(np.empty((0, len(features))), label=np.empty(0), feature_names=features)
    x = np.column_stack([np.concatenate(columns[f]) for f in features])
    y = np.concatenate(columns[label])
    return xgb.DMatrix(x, label=y, feature_names=features, nthread=max(1, int(spec.cpus_per_worker)))


@dataclass
class Worker:
    """One boosting process of a run: its rank, whether Ray Train runs it, and how rank 0's value reaches every
    rank (``share``, a collective; the identity in a single process)."""

    spec: WorkerSpec
    rank: int
    share: Callable[[Any], Any]
    in_ray_train: bool

    def __post_init__(self) -> None:
        self.entered = time.time()  # wall clock, comparable with the driver's: the phases of fit() in the outcome
        self.faults = FaultInjector(self.spec)
        self.store: CheckpointStore = self.spec.store()
        self.log = RunLog(self.store, self.rank)

    def restore(self, share: Callable[[Any], Any]) -> tuple[Resume, Any, TrainingState]:
        """The checkpoint resumed from (rank 0 picks it, ``share`` tells the others), its booster (None: a fresh
        start) and its training state."""
        import xgboost as xgb

        with tempfile.TemporaryDirectory(prefix="ma_ray_resume_") as tmp:
            resumed = resume(self.store, self.rank, Path(tmp), self.log, share)
            if resumed.local_dir is None:
                return resumed, None, TrainingState()
            booster = xgb.Booster(model_file=str(resumed.local_dir / MODEL_FILE))
            saved = read_state(resumed.local_dir)
            rng = saved.rng_for(self.rank)
            if rng is not None:
                restore_rng(rng)
            return resumed, booster, saved.training

    def boost(self, resumed: Resume, booster: Any, state: TrainingState, dtrain: Any, evals: list[Any],
              loaded_at: float) -> dict[str, Any]:  # fmt: skip
        """Boost the remaining rounds from ``booster`` (checkpointing as due) and take the final checkpoint; rank
        0's last report (`summary`) with the attempt's phases."""
        import xgboost as xgb

        params, rounds = booster_params(self.spec)
        loop = _Loop(self, state)
        started, boosting_from = time.monotonic(), time.time()
        if rounds > state.step:
            booster = xgb.train(params, dtrain, num_boost_round=rounds - state.step, evals=evals, xgb_model=booster,
                                callbacks=[loop.callback()], verbose_eval=False)  # fmt: skip
        boosted = time.time()
        if self.rank == 0 and not loop.preempted and loop.clock.last_step != loop.state.step:
            loop.save(booster)
        metrics = {
            **loop.metric,
            "boosting_s": time.monotonic() - started,  # this attempt's rounds and checkpoints
            "phase_resume_s": loaded_at - self.entered,
            "phase_to_dmatrix_s": boosting_from - loaded_at,
            "phase_final_checkpoint_s": time.time() - boosted,
            "reported_at": time.time(),
        }
        return summary(PREEMPTED if loop.preempted else SUCCEEDED, resumed, loop.state.step, loop.history, metrics)


class _Loop:
    """Per-round bookkeeping of one worker: history, faults, preemption, checkpoints (rank 0 writes)."""

    def __init__(self, worker: Worker, state: TrainingState) -> None:
        self.worker = worker
        self.state = state
        self.clock = CheckpointClock(worker.spec, last_step=state.step if state.step else None)
        self.notice = ControlNotice(worker.spec.checkpoint_uri, worker.spec.run_id)
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
        step, worker = model.num_boosted_rounds(), self.worker
        self._record(step, evals_log)
        worker.faults.maybe_kill(step, worker.rank)
        # The controller's notice every round (a round can take minutes): a stat on rank 0 at most every
        # NOTICE_POLL_S and one broadcast (~0.15 ms on one host), small beside the round's own allreduces.
        seconds_left = preemption_seconds_left(worker.faults, self.notice, step, worker.rank, worker.share,
                                               notice_every=1, in_ray_train=worker.in_ray_train)  # fmt: skip
        if seconds_left is not None:
            save, line = self.clock.on_notice(step, seconds_left, self.notice.reason)
            worker.log.add(line)
            if save and worker.rank == 0:
                self.save(model)
            self.preempted = True
            return True
        if worker.rank == 0 and self.clock.due(step):
            self.save(model)
        return False

    def save(self, model: Any) -> None:
        def write(directory: Path) -> None:
            model.save_model(str(directory / MODEL_FILE))
            write_state(directory, self.state, [capture_rng()])

        checkpoint_id, took = timed_save(self.worker.store, write, self.state.step, self.state.epoch)
        self.clock.saved(self.state.step, took)
        self.worker.log.add(f"Checkpoint {checkpoint_id} at step {self.state.step} ({took:.3f}s)")


__all__ = ["DEFAULT_ROUNDS", "MODEL_FILE", "Worker", "booster_params", "dmatrix"]
