"""Framework trainers on Ray Train (and XGBoost in one process too, `xgboost_local`): ``fit(framework, run)`` trains
``run`` with the framework's trainer on the run's engine.

Each trainer imports its framework only when called, so importing this package stays cheap; for the same reason
the PyTorch helpers are imported by their own path (`ma_ray.training.trainers.torch_trainer`'s ``mlp``,
`ma_ray.training.trainers.tiny_lm`). The preemption notice is how the job controller asks a run to checkpoint
and stop.
"""

from __future__ import annotations

import importlib

from ma_ray.engine import Engine
from ma_ray.training.engine_choice import framework_refusal
from ma_ray.training.run import TrainingOutcome, TrainingRun
from ma_ray.training.trainers.common import WORKER_POLL_INTERVAL_S
from ma_ray.training.trainers.preemption import clear_preemption_notice, send_preemption_notice
from ma_ray.training.trainers.xgboost_local import warm_up_single_process

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
    if run.engine is Engine.LOCAL and (refused := framework_refusal(framework)) is not None:
        raise ValueError(refused)
    outcome: TrainingOutcome = importlib.import_module(module).fit(run)
    return outcome


__all__ = [
    "FRAMEWORKS",
    "WORKER_POLL_INTERVAL_S",
    "clear_preemption_notice",
    "fit",
    "send_preemption_notice",
    "warm_up_single_process",
]
