"""Picking a job's engine by its size (a data job's, a training job's), and sizing a Ray Data read."""

from __future__ import annotations

import pytest

from ma_ray.engine import Engine, EngineChoice, read_blocks
from ma_ray.training import LOCAL_BELOW_ROWS, TrainingShape, local_refusal, training_engine


def test_auto_runs_locally_below_the_threshold_and_on_ray_data_at_or_above_it() -> None:
    choice = EngineChoice(local_below_rows=1000)
    assert (choice.pick(0), choice.pick(999), choice.pick(1000)) == (Engine.LOCAL, Engine.LOCAL, Engine.RAY_DATA)
    assert EngineChoice().pick(0) is Engine.RAY_DATA  # threshold 0: always distributed


def test_a_forced_engine_ignores_the_size() -> None:
    assert EngineChoice("local", 10).pick(10**9) is Engine.LOCAL
    assert EngineChoice(Engine.RAY_DATA, 10**9).pick(1) is Engine.RAY_DATA


@pytest.mark.parametrize(
    ("engine", "rows", "message"),
    [("spark", 0, "'spark' is not a valid Engine"), ("auto", -1, "local_below_rows must be >= 0")],
)
def test_bad_choices_say_what_to_fix(engine: str, rows: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EngineChoice(engine, rows)  # type: ignore[arg-type]


def test_read_blocks_one_per_block_of_rows_at_least_one_per_cpu_at_most_one_per_file() -> None:
    assert read_blocks(rows=1_000_000, files=280, cpus=2, rows_per_block=250_000) == 4
    assert read_blocks(rows=1_000_000, files=280, cpus=16, rows_per_block=250_000) == 16
    assert read_blocks(rows=1_000_000, files=3, cpus=16, rows_per_block=250_000) == 3
    assert read_blocks(rows=0, files=0, cpus=2, rows_per_block=250_000) == 1
    with pytest.raises(ValueError, match="rows_per_block must be >= 1"):
        read_blocks(rows=10, files=1, cpus=1, rows_per_block=0)


def test_a_job_names_its_distributed_engine_and_only_those_engines_run_it() -> None:
    training = EngineChoice(local_below_rows=1000, distributed=Engine.RAY_TRAIN)
    assert (training.pick(999), training.pick(1000)) == (Engine.LOCAL, Engine.RAY_TRAIN)
    with pytest.raises(ValueError, match="engine 'ray_data' does not run this job: use one of auto, local, ray_train"):
        EngineChoice(Engine.RAY_DATA, distributed=Engine.RAY_TRAIN)


def _shape(**changes: object) -> TrainingShape:
    values: dict[str, object] = {"framework": "xgboost", "rows": 1_000_000, "cpus": 2.0, "gpus": 0.0,
                                 "largest_node_cpus": 16.0}  # fmt: skip
    return TrainingShape(**{**values, **changes})  # type: ignore[arg-type]


def test_training_is_local_when_it_can_be_and_small_enough() -> None:
    auto = EngineChoice(local_below_rows=LOCAL_BELOW_ROWS, distributed=Engine.RAY_TRAIN)
    assert training_engine(auto, _shape()) is Engine.LOCAL
    assert training_engine(auto, _shape(rows=LOCAL_BELOW_ROWS)) is Engine.RAY_TRAIN
    # What one process cannot do goes to Ray Train, whatever the size.
    assert training_engine(auto, _shape(framework="pytorch", rows=10)) is Engine.RAY_TRAIN
    assert training_engine(auto, _shape(gpus=1.0, rows=10)) is Engine.RAY_TRAIN
    assert training_engine(auto, _shape(cpus=32.0, rows=10)) is Engine.RAY_TRAIN
    forced = EngineChoice(Engine.RAY_TRAIN, LOCAL_BELOW_ROWS, Engine.RAY_TRAIN)
    assert training_engine(forced, _shape(rows=10)) is Engine.RAY_TRAIN


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"framework": "deepspeed"}, "trains xgboost only, not deepspeed"),
        ({"gpus": 1.0}, "trains on CPUs only: ask for no GPUs, or for engine ray_train"),
        ({"cpus": 32.0}, "asks for 32 CPUs and the largest node has 16: one process cannot hold them"),
    ],
)
def test_forcing_the_local_engine_on_a_job_it_cannot_run_says_why(changes: dict[str, object], message: str) -> None:
    forced = EngineChoice(Engine.LOCAL, LOCAL_BELOW_ROWS, Engine.RAY_TRAIN)
    assert local_refusal(_shape(**changes)) is not None
    with pytest.raises(ValueError, match=message):
        training_engine(forced, _shape(**changes))


def test_the_pipelines_ray_data_context_runs_a_jobs_tasks_side_by_side_and_is_restored() -> None:
    """Ray Data's per-operator reservation admitted a short-task job's tasks one at a time (bench/scaling.py: the
    pipeline was no faster on 2 CPUs than on 1, 0.42-0.50 efficiency; 0.78 with reservation off)."""
    from ray.data import DataContext

    from ma_ray.palette.pipelines.batch import data_context

    context = DataContext.get_current()
    before = (context.op_resource_reservation_enabled, context.use_datasource_v2, context.shuffle_strategy)
    with data_context():
        assert context.op_resource_reservation_enabled is False
        assert context.use_datasource_v2 is False
    assert (context.op_resource_reservation_enabled, context.use_datasource_v2, context.shuffle_strategy) == before
