"""Which engine trains a job: one process (`xgboost_local`: one Ray task with every CPU the job asked for) or a Ray
Train worker group.

On one node one process is faster at every size measured (bench/results/training_xgboost.json: Ray Train pays
5-16 s, by day, to start its worker group, and its workers split rounds that one process's threads do alone),
so AUTO trains in one process whenever it can: an XGBoost job on CPUs whose CPUs fit on one node, below
`LOCAL_BELOW_ROWS` training rows. Above that a job's data is large enough to be worth spreading over nodes'
memory; a spec's ``engine`` and ``local_below_rows`` override the choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from ma_ray.engine import Engine, EngineChoice

LOCAL_BELOW_ROWS = 10_000_000
LOCAL_FRAMEWORKS = frozenset({"xgboost"})
"""The frameworks (as the trainers name them) with a single-process engine."""


@dataclass(frozen=True)
class TrainingShape:
    """What the choice looks at: the framework, training rows, the CPUs and GPUs asked for, the largest node."""

    framework: str
    rows: int
    cpus: float
    gpus: float
    largest_node_cpus: float


def framework_refusal(framework: str) -> str | None:
    """Why ``framework`` cannot train in one process (None: it can)."""
    if framework in LOCAL_FRAMEWORKS:
        return None
    return f"the single-process engine trains {', '.join(sorted(LOCAL_FRAMEWORKS))} only, not {framework}"


def local_refusal(shape: TrainingShape) -> str | None:
    """Why ``shape`` cannot train in one process (None: it can)."""
    if (refused := framework_refusal(shape.framework)) is not None:
        return refused
    if shape.gpus > 0:
        return "the single-process engine trains on CPUs only: ask for no GPUs, or for engine ray_train"
    if shape.cpus > shape.largest_node_cpus:
        return (f"the job asks for {shape.cpus:g} CPUs and the largest node has {shape.largest_node_cpus:g}: one "
                "process cannot hold them; use engine ray_train")  # fmt: skip
    return None


def training_engine(choice: EngineChoice, shape: TrainingShape) -> Engine:
    """LOCAL or RAY_TRAIN for ``shape``. ``ValueError`` when LOCAL is forced on a job that cannot run in one process."""
    refusal = local_refusal(shape)
    if choice.engine is Engine.LOCAL and refusal is not None:
        raise ValueError(refusal)
    if choice.engine is Engine.AUTO and refusal is not None:
        return Engine.RAY_TRAIN
    return choice.pick(shape.rows)


__all__ = [
    "LOCAL_BELOW_ROWS",
    "LOCAL_FRAMEWORKS",
    "TrainingShape",
    "framework_refusal",
    "local_refusal",
    "training_engine",
]
