"""What each worker of a training run gets: the picklable part of a `TrainingRun` (datasets travel as Ray Data
shards)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ma_ray.training.checkpoint_policy import (
    CheckpointPolicy,
)
from ma_ray.training.checkpoint_store import CheckpointStore
from ma_ray.training.run import FaultInjection, TrainingRun


@dataclass(frozen=True)
class WorkerSpec:
    """The picklable part of a `TrainingRun` that each worker gets (datasets travel as Ray Data shards)."""

    run_id: str
    checkpoint_uri: str
    label_column: str
    feature_columns: tuple[str, ...]
    params: dict[str, Any]
    estimated_duration_s: float
    policy: CheckpointPolicy
    checkpoint_every_steps: int | None
    faults: FaultInjection
    has_valid: bool
    text_column: str | None
    use_gpu: bool
    cpus_per_worker: float

    @classmethod
    def of(cls, run: TrainingRun) -> WorkerSpec:
        return cls(
            run.run_id, run.checkpoint_uri, run.label_column, tuple(run.feature_columns), dict(run.params),
            run.estimated_duration_s, run.checkpoint_policy, run.checkpoint_every_steps, run.faults,
            run.valid is not None, run.text_column, run.use_gpu, run.cpus_per_worker,
        )  # fmt: skip

    def store(self) -> CheckpointStore:
        return CheckpointStore(self.checkpoint_uri, self.run_id, self.policy)
