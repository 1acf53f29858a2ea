"""Fine-tuning the project's tiny causal LM with DeepSpeed ZeRO stage 2 inside Ray Train V2's ``TorchTrainer``.

Without a GPU, DeepSpeed runs on its CPU accelerator (``DS_ACCELERATOR=cpu``, set before deepspeed is imported)
over the gloo process group Ray Train already set up: ``deepspeed.init_distributed(dist_backend="gloo")`` reuses
it, so neither oneCCL nor Intel's extension is needed. The optimizer is torch's AdamW (``torch_adam``), as
DeepSpeed's fused Adam needs a GPU.

A step is an optimizer step. ZeRO-2 partitions the optimizer state across ranks, so every rank takes part in a
checkpoint: ``engine.save_checkpoint`` writes the rank's files into ``ds/``, each rank uploads its own files to
the store, and rank 0 adds ``training_state.json`` and commits the manifest listing them all. The trained
model is that checkpoint folder (what Gallery's deepspeed flavor stores), with ``model_config.json`` to rebuild
the module through `tiny_lm.build_tiny_lm`.

Params: ``epochs`` (2), ``batch_size`` (8), ``seq_len`` (48), ``lr`` (3e-3), ``seed`` (0), ``d_model`` (32),
``n_heads`` (2), ``n_layers`` (2). Rows are read from ``run.text_column``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ma_ray.storage import FileEntry
from ma_ray.training.checkpoint_state import TrainingState, read_state, restore_rng, write_state
from ma_ray.training.checkpoint_store import checkpoint_id_for
from ma_ray.training.run import TrainingOutcome, TrainingRun
from ma_ray.training.trainers.checkpointing import CheckpointClock, final_checkpoint, resume
from ma_ray.training.trainers.common import outcome
from ma_ray.training.trainers.faults import FaultInjector
from ma_ray.training.trainers.run_log import RunLog
from ma_ray.training.trainers.torch_common import (
    StepGate,
    agree,
    finish_step,
    gather,
    gather_rng,
    run_epochs,
    torch_trainer,
)
from ma_ray.training.trainers.worker_spec import WorkerSpec

DS_DIR, CONFIG_FILE = "ds", "model_config.json"


@dataclass(frozen=True)
class LMParams:
    epochs: int = 2
    batch_size: int = 8
    seq_len: int = 48
    lr: float = 3e-3
    seed: int = 0
    d_model: int = 32
    n_heads: int = 2
    n_layers: int = 2

    @classmethod
    def of(cls, params: dict[str, Any]) -> LMParams:
        """The fine-tuning settings from a run's params (other keys are left alone)."""
        return cls(**{k: v for k, v in params.items() if k in cls.__dataclass_fields__})

    def model_config(self) -> dict[str, Any]:
        from ma_ray.training.trainers.tiny_lm import TinyLMConfig

        return TinyLMConfig(d_model=self.d_model, n_heads=self.n_heads, n_layers=self.n_layers,
                            max_len=self.seq_len).to_dict()  # fmt: skip

    def deepspeed_config(self) -> dict[str, Any]:
        return {
            "train_micro_batch_size_per_gpu": self.batch_size,
            "gradient_accumulation_steps": 1,
            "optimizer": {"type": "AdamW", "params": {"lr": self.lr, "torch_adam": True}},
            "zero_optimization": {"stage": 2},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 2**31 - 1,
        }


def _text_batches(name: str, column: str, batch_size: int) -> Any:
    import ray.train

    for batch in ray.train.get_dataset_shard(name).iter_batches(batch_size=batch_size, batch_format="numpy"):
        yield [str(t) for t in batch[column]]


class _FineTune:
    """One worker's DeepSpeed engine, training state and checkpoints."""

    def __init__(self, spec: WorkerSpec, hp: LMParams, rank: int) -> None:
        import deepspeed
        import torch

        from ma_ray.training.trainers.tiny_lm import build_tiny_lm

        self.spec, self.hp, self.rank = spec, hp, rank
        self.store, self.faults = spec.store(), FaultInjector(spec)
        self.log = RunLog(self.store, rank)
        deepspeed.init_distributed(dist_backend="nccl" if spec.use_gpu else "gloo")
        torch.manual_seed(hp.seed)
        model = build_tiny_lm(**hp.model_config())
        self.engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                               config=hp.deepspeed_config())  # fmt: skip
        stage = self.engine.zero_optimization_stage()
        self.log.add(f"Rank {rank} trains on {self.engine.device} with ZeRO stage {stage}")
        self.state = TrainingState()
        with tempfile.TemporaryDirectory(prefix="ma_ray_resume_") as tmp:
            self.resumed = resume(self.store, rank, Path(tmp), self.log)
            if self.resumed.local_dir is not None:
                self.engine.load_checkpoint(str(Path(tmp) / DS_DIR))
                saved = read_state(Path(tmp))
                self.state = saved.training
                rng = saved.rng_for(rank)
                if rng is not None:
                    restore_rng(rng)
        self.clock = CheckpointClock(spec, last_step=self.state.step if self.resumed.manifest else None)
        self.gate = StepGate(self.faults, self.log, rank, self.clock)
        self.history: list[dict[str, float]] = []
        self.metrics: dict[str, float] = {}

    def _loss(self, texts: list[str], reduction: str = "mean") -> Any:
        import torch.nn.functional as F

        from ma_ray.training.trainers.tiny_lm import PAD, token_batch

        inputs, targets = token_batch(texts, self.hp.seq_len)
        logits = self.engine(inputs.to(self.engine.device))
        return F.cross_entropy(logits.flatten(0, 1), targets.to(self.engine.device).flatten(), ignore_index=PAD,
                               reduction=reduction)  # fmt: skip

    def checkpoint(self) -> None:
        """Collective: every rank saves and uploads its part; rank 0 commits the manifest."""
        started = time.monotonic()
        checkpoint_id = agree(checkpoint_id_for(self.state.step))
        rngs = gather_rng()
        with tempfile.TemporaryDirectory(prefix="ma_ray_ckpt_") as tmp:
            self.engine.save_checkpoint(str(Path(tmp) / DS_DIR), tag=f"step{self.state.step}")
            if self.rank == 0:
                (Path(tmp) / DS_DIR / CONFIG_FILE).write_text(json.dumps(self.hp.model_config()))
                write_state(Path(tmp), self.state, rngs)
            entries: list[FileEntry] = self.store.write_files(checkpoint_id, Path(tmp))
        every_rank = gather(entries)
        if self.rank == 0:
            unique = {entry.path: entry for part in reversed(every_rank) for entry in part}  # rank 0's copy wins
            self.store.commit(checkpoint_id, self.state.step, self.state.epoch, list(unique.values()))
            self.store.prune()
        took = time.monotonic() - started
        self.clock.saved(self.state.step, took)
        self.log.add(f"Checkpoint {checkpoint_id} at step {self.state.step} ({took:.3f}s)")

    def run_epoch(self, epoch: int) -> bool:
        """Train one epoch (the rest of it, when resumed inside it); False when a preemption stopped it."""
        skip = self.state.step_in_epoch if epoch == self.state.epoch else 0
        self.engine.train()
        for index, texts in enumerate(_text_batches("train", self.spec.text_column or "text", self.hp.batch_size)):
            if index < skip:
                continue
            loss = self._loss(texts)
            self.engine.backward(loss)
            self.engine.step()
            if not finish_step(self, epoch, index, loss):
                return False
        return True

    def end_epoch(self, epoch: int) -> None:
        import torch

        from ma_ray.training.trainers.tiny_lm import PAD, token_batch

        if self.spec.has_valid:
            self.engine.eval()
            total, tokens = 0.0, 0
            with torch.no_grad():
                for texts in _text_batches("valid", self.spec.text_column or "text", self.hp.batch_size):
                    total += float(self._loss(texts, reduction="sum").item())
                    tokens += int((token_batch(texts, self.hp.seq_len)[1] != PAD).sum())
            parts = gather((total, tokens))
            mean = sum(p[0] for p in parts) / max(sum(p[1] for p in parts), 1)
            self.metrics.update({"valid_loss": mean, "valid_perplexity": math.exp(mean)})
        # None when a resumed epoch had no batch left and there is no validation set.
        value, best = self.metrics.get("valid_loss", self.metrics.get("train_loss")), self.state.best_metric
        best = value if best is None else best if value is None else min(best, value)
        self.state = TrainingState(epoch + 1, self.state.step, best, 0)
        self.history.append({"epoch": float(epoch), "step": float(self.state.step), **self.metrics})


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: resume, fine-tune the remaining epochs, checkpoint, report."""
    spec: WorkerSpec = config["spec"]
    if not spec.use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # read when deepspeed is first imported
    import ray.train

    run_epochs(_FineTune(spec, LMParams.of(spec.params), ray.train.get_context().get_world_rank()))


def fit(run: TrainingRun) -> TrainingOutcome:
    """Fine-tune with ``run.num_workers`` DeepSpeed ranks. The model is a local copy of the final DeepSpeed
    checkpoint folder (kept for the caller to log to Gallery, then delete)."""
    if not run.text_column:
        raise ValueError("the deepspeed trainer reads text: set TrainingRun.text_column")
    spec = WorkerSpec.of(run)
    started = time.monotonic()
    result = torch_trainer(train_loop, spec, run).fit()
    store = spec.store()
    local = Path(tempfile.mkdtemp(prefix="ma_ray_deepspeed_model_"))
    final_checkpoint(store, local)
    from ma_ray.training.trainers.tiny_lm import build_tiny_lm

    factory = {"factory": f"{build_tiny_lm.__module__}:{build_tiny_lm.__qualname__}",
               "factory_kwargs": LMParams.of(spec.params).model_config()}  # fmt: skip
    done = outcome("deepspeed", result.metrics, store, local / DS_DIR, save_options=factory)
    done.metrics["wall_time_s"] = time.monotonic() - started
    return done
