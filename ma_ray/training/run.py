"""What a trainer is given and what it gives back: the one contract between the job entrypoint
(`apps.train`) and the framework trainers in `ma_ray.training.trainers`.

A run is identified by ``run_id``; its checkpoints live under ``<checkpoint_uri>/<run_id>/`` on any
``pyarrow.fs`` filesystem, so a restarted run (same id) resumes from its newest valid checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ma_ray.engine import Engine
from ma_ray.training.checkpoint_policy import CheckpointPolicy

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data


@dataclass(frozen=True)
class FaultInjection:
    """Test hooks, off by default: fail one worker once at a step, or deliver a preemption notice at a step.

    A marker file is created when a fault fires, so a retried attempt (or a rerun) does not fire it again:
    ``<marker_uri>-fail`` / ``<marker_uri>-preempt``, by default ``<checkpoint_uri>/<run_id>/_faults/fail|preempt``."""

    fail_at_step: int | None = None
    preempt_at_step: int | None = None
    marker_uri: str | None = None


@dataclass(frozen=True)
class TrainingRun:
    """Everything a trainer needs. ``train``/``valid`` hold ``feature_columns`` plus ``label_column``
    (the language-model trainer reads ``text_column`` instead); each is a Ray Dataset or an Arrow table, which each
    engine takes as it needs. ``engine``: a Ray Train worker group, or one process (`Engine.LOCAL`, XGBoost only)
    with ``num_workers * cpus_per_worker`` CPUs."""

    run_id: str
    checkpoint_uri: str
    train: ray.data.Dataset | pa.Table
    valid: ray.data.Dataset | pa.Table | None
    label_column: str
    feature_columns: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 2
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    estimated_duration_s: float = 600.0
    checkpoint_policy: CheckpointPolicy = field(default_factory=CheckpointPolicy)
    checkpoint_every_steps: int | None = None
    max_failures: int = 2
    faults: FaultInjection = field(default_factory=FaultInjection)
    text_column: str | None = None
    engine: Engine = Engine.RAY_TRAIN

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine", Engine(self.engine))
        if self.engine not in (Engine.LOCAL, Engine.RAY_TRAIN):
            raise ValueError(f"a training run's engine is local or ray_train, not {self.engine.value!r}")


@dataclass(frozen=True)
class TrainingOutcome:
    """``status`` is ``succeeded`` or ``preempted`` (a checkpoint was taken on the notice; rerun the same
    ``run_id`` to resume). ``model`` is what Gallery's flavor for ``framework`` saves."""

    status: str
    framework: str
    model: Any
    metrics: dict[str, float]
    resumed_from_step: int | None
    final_step: int
    checkpoints: tuple[str, ...]
    history: tuple[dict[str, float], ...] = ()
    log_lines: tuple[str, ...] = ()
    save_options: dict[str, Any] = field(default_factory=dict)
    """Keyword options for ``Gallery.log_model(..., framework, **save_options)`` (pytorch: the model factory)."""
