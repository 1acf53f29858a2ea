"""Picking a data job's engine by its size, and sizing its Ray Data read."""

from __future__ import annotations

import pytest

from ma_ray.engine import Engine, EngineChoice, read_blocks


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
