"""Worker-side pieces the PyTorch and DeepSpeed trainers share: per-step decisions every rank agrees on (through
``torch.distributed``, already set up by Ray Train's TorchTrainer), and feature batches from a Ray Data shard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ma_ray.training.checkpoint_state import capture_rng
from ma_ray.training.trainers.common import CheckpointClock, ControlNotice, Faults, RunLog, preemption_seconds_left


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

    def __init__(self, faults: Faults, log: RunLog, rank: int, clock: CheckpointClock) -> None:
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


def feature_batches(shard: Any, features: tuple[str, ...], label: str, batch_size: int, classify: bool) -> Iterator:
    """``(x, y)`` tensors: features stacked as float32 columns; labels float32, or int64 class ids."""
    import torch

    for batch in shard.iter_torch_batches(batch_size=batch_size):
        x = torch.stack([batch[name].to(torch.float32) for name in features], dim=1)
        y = batch[label].to(torch.int64) if classify else batch[label].to(torch.float32)
        yield x, y
