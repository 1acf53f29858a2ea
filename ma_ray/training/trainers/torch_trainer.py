"""An MLP on tabular features with Ray Train V2's ``TorchTrainer`` (DDP; gloo on CPU, NCCL on GPUs).

A step is an optimizer step on one batch. The model is replicated, so rank 0 writes checkpoints: ``model.pt``,
``optimizer.pt`` (state dicts, loaded with ``weights_only=True``) and ``training_state.json`` (epoch, step, best
metric, batches done in the epoch, every rank's random states). A run resumed mid-epoch skips the batches done.

Params: ``task`` (``regression`` | ``classification``), ``num_classes`` (classification), ``hidden`` (layer
widths, default ``[32, 16]``), ``lr`` (1e-2), ``epochs`` (10), ``batch_size`` (64), ``seed`` (0).
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ma_ray.training.checkpoint_state import TrainingState, read_state, restore_rng, write_state
from ma_ray.training.run import TrainingOutcome, TrainingRun
from ma_ray.training.trainers.checkpointing import CheckpointClock, final_checkpoint, resume, timed_save
from ma_ray.training.trainers.common import outcome
from ma_ray.training.trainers.faults import FaultInjector
from ma_ray.training.trainers.run_log import RunLog
from ma_ray.training.trainers.torch_common import (
    StepGate,
    feature_batches,
    finish_step,
    gather,
    gather_rng,
    run_epochs,
    torch_trainer,
)
from ma_ray.training.trainers.worker_spec import WorkerSpec

MODEL_FILE, OPTIMIZER_FILE = "model.pt", "optimizer.pt"


def mlp(in_features: int, hidden: list[int], out_features: int) -> Any:
    """The model factory Gallery rebuilds the module with: ReLU layers of widths ``hidden``, then a linear head."""
    import torch

    layers: list[torch.nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
        width = size
    layers.append(torch.nn.Linear(width, out_features))
    return torch.nn.Sequential(*layers)


@dataclass(frozen=True)
class MLPParams:
    task: str = "regression"
    num_classes: int | None = None
    hidden: list[int] = field(default_factory=lambda: [32, 16])
    lr: float = 1e-2
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in ("regression", "classification"):
            raise ValueError(f"task must be regression or classification, not {self.task!r}")
        if self.task == "classification" and not self.num_classes:
            raise ValueError("a classification MLP needs params num_classes")

    @classmethod
    def of(cls, params: dict[str, Any]) -> MLPParams:
        """The MLP's settings from a run's params (other keys are not the MLP's and are left alone)."""
        return cls(**{k: v for k, v in params.items() if k in cls.__dataclass_fields__})

    @property
    def classify(self) -> bool:
        return self.task == "classification"

    def factory_kwargs(self, in_features: int) -> dict[str, Any]:
        return {"in_features": in_features, "hidden": list(self.hidden),
                "out_features": self.num_classes if self.classify else 1}  # fmt: skip


def _loss(model: Any, x: Any, y: Any, classify: bool) -> Any:
    import torch.nn.functional as F

    out = model(x)
    return F.cross_entropy(out, y) if classify else F.mse_loss(out.squeeze(-1), y)


def _evaluate(model: Any, spec: WorkerSpec, hp: MLPParams) -> dict[str, float]:
    """Validation loss (rmse for regression; loss and accuracy for classification) over every rank's shard."""
    import ray.train
    import torch
    import torch.nn.functional as F

    total, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for x, y in feature_batches(ray.train.get_dataset_shard("valid"), spec.feature_columns, spec.label_column,
                                    hp.batch_size, hp.classify):  # fmt: skip
            out = model(x)
            if hp.classify:
                total += F.cross_entropy(out, y, reduction="sum").item()
                correct += int((out.argmax(-1) == y).sum())
            else:
                total += F.mse_loss(out.squeeze(-1), y, reduction="sum").item()
            count += len(y)
    parts = gather((total, correct, count))
    total, correct, count = (sum(p[i] for p in parts) for i in range(3))
    if hp.classify:
        return {"valid_loss": total / max(count, 1), "valid_accuracy": correct / max(count, 1)}
    return {"valid_rmse": math.sqrt(total / max(count, 1))}


class _Trainer:
    """One worker's training: model, optimizer, state, and checkpointing through the store."""

    def __init__(self, spec: WorkerSpec, hp: MLPParams, rank: int) -> None:
        import ray.train.torch
        import torch

        self.spec, self.hp, self.rank = spec, hp, rank
        self.store, self.faults = spec.store(), FaultInjector(spec)
        self.log = RunLog(self.store, rank)
        torch.manual_seed(hp.seed)
        self.factory_kwargs = hp.factory_kwargs(len(spec.feature_columns))
        module = mlp(**self.factory_kwargs)
        self.state, optimizer_state = TrainingState(), None
        with tempfile.TemporaryDirectory(prefix="ma_ray_resume_") as tmp:
            self.resumed = resume(self.store, rank, Path(tmp), self.log)
            if self.resumed.local_dir is not None:
                module.load_state_dict(torch.load(Path(tmp) / MODEL_FILE, map_location="cpu", weights_only=True))
                optimizer_state = torch.load(Path(tmp) / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
                saved = read_state(Path(tmp))
                self.state = saved.training
                rng = saved.rng_for(rank)
                if rng is not None:
                    restore_rng(rng)
        self.module = module
        self.model = ray.train.torch.prepare_model(module)
        self.log.add(f"Rank {rank} trains on {next(self.model.parameters()).device}")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=hp.lr)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
        self.clock = CheckpointClock(spec, last_step=self.state.step if self.resumed.manifest else None)
        self.gate = StepGate(self.faults, self.log, rank, self.clock)
        self.history: list[dict[str, float]] = []
        self.metrics: dict[str, float] = {}

    def checkpoint(self) -> None:
        """Collective: every rank gives its random state; rank 0 writes and stores the checkpoint."""
        import torch

        started = time.monotonic()
        rngs = gather_rng()
        if self.rank == 0:

            def write(directory: Path) -> None:
                torch.save(self.module.state_dict(), directory / MODEL_FILE)
                torch.save(self.optimizer.state_dict(), directory / OPTIMIZER_FILE)
                write_state(directory, self.state, rngs)

            checkpoint_id, _ = timed_save(self.store, write, self.state.step, self.state.epoch)
            self.log.add(f"Checkpoint {checkpoint_id} at step {self.state.step}")
        self.clock.saved(self.state.step, time.monotonic() - started)  # every rank: the next decisions agree

    def run_epoch(self, epoch: int) -> bool:
        """Train one epoch (the rest of it, when resumed inside it); False when a preemption stopped it."""
        import ray.train

        skip = self.state.step_in_epoch if epoch == self.state.epoch else 0
        self.model.train()
        batches = feature_batches(ray.train.get_dataset_shard("train"), self.spec.feature_columns,
                                  self.spec.label_column, self.hp.batch_size, self.hp.classify)  # fmt: skip
        for index, (x, y) in enumerate(batches):
            if index < skip:
                continue
            self.optimizer.zero_grad()
            loss = _loss(self.model, x, y, self.hp.classify)
            loss.backward()
            self.optimizer.step()
            if not finish_step(self, epoch, index, loss):
                return False
        return True

    def end_epoch(self, epoch: int) -> None:
        if self.spec.has_valid:
            self.model.eval()
            self.metrics.update(_evaluate(self.model, self.spec, self.hp))
        key = ("valid_accuracy" if self.hp.classify else "valid_rmse") if self.spec.has_valid else "train_loss"
        # None when a resumed epoch had no batch left and there is no validation set.
        value, best = self.metrics.get(key), self.state.best_metric
        better = value is not None and (best is None or (value > best if key == "valid_accuracy" else value < best))
        self.state = TrainingState(epoch + 1, self.state.step, value if better else best, 0)
        self.history.append({"epoch": float(epoch), "step": float(self.state.step), **self.metrics})


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: resume, train the remaining epochs, checkpoint, report."""
    import ray.train

    spec: WorkerSpec = config["spec"]
    run_epochs(_Trainer(spec, MLPParams.of(spec.params), ray.train.get_context().get_world_rank()))


def fit(run: TrainingRun) -> TrainingOutcome:
    """Train with ``run.num_workers`` DDP workers; the model is the trained ``torch.nn.Module`` and
    ``save_options`` name its factory for Gallery's pytorch flavor."""
    import torch

    spec = WorkerSpec.of(run)
    hp = MLPParams.of(spec.params)
    started = time.monotonic()
    result = torch_trainer(train_loop, spec, run).fit()
    store = spec.store()
    factory_kwargs = hp.factory_kwargs(len(spec.feature_columns))
    module = mlp(**factory_kwargs)
    with tempfile.TemporaryDirectory(prefix="ma_ray_model_") as tmp:
        final_checkpoint(store, Path(tmp))
        module.load_state_dict(torch.load(Path(tmp) / MODEL_FILE, map_location="cpu", weights_only=True))
    module.eval()
    options = {"factory": f"{mlp.__module__}:{mlp.__qualname__}", "factory_kwargs": factory_kwargs}
    done = outcome("pytorch", result.metrics, store, module, save_options=options)
    done.metrics["wall_time_s"] = time.monotonic() - started
    return done
