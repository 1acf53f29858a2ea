"""Training: a job's run (`TrainingRun` in, `TrainingOutcome` out), its training table read from Palette's
snapshots, and the seed's checkpointing (the store of verified checkpoints, the retention and recovery policy).
The framework trainers on Ray Train are in `ma_ray.training.trainers` (``fit(framework, run)``)."""

from ma_ray.training.checkpoint_policy import CheckpointPolicy
from ma_ray.training.checkpoint_store import MANIFEST, CheckpointStore, checkpoint_root
from ma_ray.training.run import FaultInjection, TrainingOutcome, TrainingRun
from ma_ray.training.training_data import training_table

__all__ = [
    "MANIFEST",
    "CheckpointPolicy",
    "CheckpointStore",
    "FaultInjection",
    "TrainingOutcome",
    "TrainingRun",
    "checkpoint_root",
    "training_table",
]
