"""What the PyTorch and DeepSpeed trainers share: per-step decisions every rank agrees on (through
``torch.distributed``, already set up by Ray Train's TorchTrainer), the bookkeeping after a step, the epoch loop
of a worker, feature batches from a Ray Data shard, and the driver's ``TorchTrainer``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ma_ray.training.checkpoint_state import TrainingState, capture_rng
from ma_ray.training.run import TrainingRun
from ma_ray.training.trainers.checkpointing import CheckpointClock
from ma_ray.training.trainers.common import (
    PREEMPTED,
    SUCCEEDED,
    datasets,
    report_final,
    run_config,
    scaling_config,
    summary,
)
from ma_ray.training.trainers.faults import FaultInjector
from ma_ray.training.trainers.preemption import ControlNotice, preemption_seconds_left
from ma_ray.training.trainers.run_log import RunLog
from ma_ray.training.trainers.worker_spec import WorkerSpec


def agree(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def gather_rng() -> list[dict[str, Any]]:
    """Every rank's random states, for a checkpoint (a collective: all ranks call it)."""
    return gather(capture_rng())


class StepGate:
    """After each optimizer step: the injected fault, a preemption notice, a due checkpoint. Returns
    ``(save_now, stop)``, the same on every rank."""

    def __init__(self, faults: FaultInjector, log: RunLog, rank: int, clock: CheckpointClock) -> None:
        self.faults, self.log, self.rank, self.clock = faults, log, rank, clock
        self.notice = ControlNotice(faults.spec.checkpoint_uri, faults.spec.run_id)
        self.preempted = False

    def after_step(self, step: int) -> tuple[bool, bool]:
        self.faults.maybe_kill(step, self.rank)
        seconds_left = preemption_seconds_left(self.faults, self.notice, step, self.rank, agree)
        if seconds_left is not None:
            save, line = agree(self.clock.on_notice(step, seconds_left, self.notice.reason) if self.rank == 0 else None)
            self.log.add(line)
            self.preempted = True
            return save, True
        return bool(agree(self.rank == 0 and self.clock.due(step))), False


def finish_step(worker: Any, epoch: int, index: int, loss: Any) -> bool:
    """After the optimizer step on batch ``index`` of ``epoch``: record the loss and the state, checkpoint if the
    gate says so; False when a preemption notice stops the run. ``worker`` has ``metrics``, ``state``, ``gate``
    and ``checkpoint()``."""
    worker.metrics["train_loss"] = float(loss.item())
    worker.state = TrainingState(epoch, worker.state.step + 1, worker.state.best_metric, index + 1)
    save, stop = worker.gate.after_step(worker.state.step)
    if save:
        worker.checkpoint()
    return not stop


def run_epochs(worker: Any) -> None:
    """A worker's whole run: the remaining epochs (``run_epoch`` False: preempted), a final checkpoint unless the
    last step has one, then the final report. ``worker`` also has ``hp.epochs``, ``clock``, ``resumed``,
    ``history``, ``rank``, ``store`` and ``end_epoch``."""
    for epoch in range(worker.state.epoch, worker.hp.epochs):
        if not worker.run_epoch(epoch):
            break
        worker.end_epoch(epoch)
    if not worker.gate.preempted and worker.clock.last_step != worker.state.step:
        worker.checkpoint()
    status = PREEMPTED if worker.gate.preempted else SUCCEEDED
    report = summary(status, worker.resumed, worker.state.step, worker.history, worker.metrics)
    report_final(worker.rank, report, worker.store)


def torch_trainer(train_loop: Any, spec: WorkerSpec, run: TrainingRun) -> Any:
    """The driver's Ray Train ``TorchTrainer`` for ``train_loop``: NCCL on GPUs, gloo on CPUs."""
    from ray.train.torch import TorchConfig, TorchTrainer

    return TorchTrainer(
        train_loop,
        train_loop_config={"spec": spec},
        torch_config=TorchConfig(backend="nccl" if run.use_gpu else "gloo"),
        scaling_config=scaling_config(run),
        run_config=run_config(spec, run.max_failures),
        datasets=datasets(run),
    )


def feature_batches(
    shard: Any, features: tuple[str, ...], label: str, batch_size: int, classify: bool
) -> Iterator[tuple[Any, Any]]:
    """``(x, y)`` tensors: features stacked as float32 columns; labels float32, or int64 class ids."""
    import torch

    for batch in shard.iter_torch_batches(batch_size=batch_size):
        x = torch.stack([batch[name].to(torch.float32) for name in features], dim=1)
        y = batch[label].to(torch.int64) if classify else batch[label].to(torch.float32)
        yield x, y
