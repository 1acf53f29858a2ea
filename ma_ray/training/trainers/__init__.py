"""Framework trainers on Ray Train: ``fit(framework, run)`` trains ``run`` with the framework's trainer.

Each trainer imports its framework only when called, so importing this package stays cheap; for the same reason
the PyTorch helpers are imported by their own path (`ma_ray.training.trainers.torch_trainer`'s ``mlp``,
`ma_ray.training.trainers.tiny_lm`). The preemption notice is how the job controller asks a run to checkpoint
and stop.
"""

from __future__ import annotations

import importlib

from ma_ray.training.run import TrainingOutcome, TrainingRun
from ma_ray.training.trainers.common import WORKER_POLL_INTERVAL_S
from ma_ray.training.trainers.preemption import clear_preemption_notice, send_preemption_notice

FRAMEWORKS: dict[str, str] = {
    "xgboost": "ma_ray.training.trainers.xgboost_trainer",
    "pytorch": "ma_ray.training.trainers.torch_trainer",
    "deepspeed": "ma_ray.training.trainers.deepspeed_trainer",
}
"""Framework name (as Gallery's ``Framework`` spells it) -> the module whose ``fit(run)`` trains it."""


def fit(framework: str, run: TrainingRun) -> TrainingOutcome:
    """Train ``run`` with ``framework``'s trainer; ``ValueError`` names the known frameworks otherwise."""
    module = FRAMEWORKS.get(framework)
    if module is None:
        raise ValueError(f"unknown framework {framework!r}: known are {', '.join(sorted(FRAMEWORKS))}")
    outcome: TrainingOutcome = importlib.import_module(module).fit(run)
    return outcome


__all__ = ["FRAMEWORKS", "WORKER_POLL_INTERVAL_S", "clear_preemption_notice", "fit", "send_preemption_notice"]
