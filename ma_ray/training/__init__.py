"""Training: a job's run (`TrainingRun` in, `TrainingOutcome` out), its training table read from Palette's
snapshots, the engine a job trains on (one process or Ray Train, by size), and the seed's checkpointing (the store
of verified checkpoints, the retention and recovery policy). The framework trainers are in
`ma_ray.training.trainers` (``fit(framework, run)``)."""

from ma_ray.training.checkpoint_policy import CheckpointPolicy
from ma_ray.training.checkpoint_store import MANIFEST, CheckpointStore, checkpoint_root
from ma_ray.training.engine_choice import (
    LOCAL_BELOW_ROWS,
    LOCAL_FRAMEWORKS,
    TrainingShape,
    framework_refusal,
    local_refusal,
    training_engine,
)
from ma_ray.training.run import FaultInjection, TrainingOutcome, TrainingRun
from ma_ray.training.training_data import training_table

__all__ = [
    "LOCAL_BELOW_ROWS",
    "LOCAL_FRAMEWORKS",
    "MANIFEST",
    "CheckpointPolicy",
    "CheckpointStore",
    "FaultInjection",
    "TrainingOutcome",
    "TrainingRun",
    "TrainingShape",
    "checkpoint_root",
    "framework_refusal",
    "local_refusal",
    "training_engine",
    "training_table",
]
