"""Which engine runs a job: one process (Arrow kernels on its own threads; XGBoost's own threads) or a distributed
one (Ray Data tasks across the cluster; a Ray Train worker group). Distribution has a fixed cost (tasks to
schedule, blocks through the object store, workers to start), so a job below a measured size runs in one process,
and one above it distributed; each job documents its threshold (``local_below_rows``) and a caller can override
it, or force an engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Engine(StrEnum):
    AUTO = "auto"  # by size: LOCAL below the job's threshold, the job's distributed engine at or above it
    LOCAL = "local"
    RAY_DATA = "ray_data"
    RAY_TRAIN = "ray_train"


@dataclass(frozen=True)
class EngineChoice:
    """How a job picks its engine: ``engine`` (AUTO by default), the size below which AUTO runs locally, and the
    job's ``distributed`` engine (Ray Data for data jobs, Ray Train for training)."""

    engine: Engine = Engine.AUTO
    local_below_rows: int = 0
    distributed: Engine = Engine.RAY_DATA

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine", Engine(self.engine))  # a name from a CLI or a spec
        object.__setattr__(self, "distributed", Engine(self.distributed))
        if self.local_below_rows < 0:
            raise ValueError(
                f"local_below_rows must be >= 0 (0: always {self.distributed}), got {self.local_below_rows}"
            )
        known = (Engine.AUTO, Engine.LOCAL, self.distributed)
        if self.engine not in known:
            raise ValueError(f"engine {self.engine.value!r} does not run this job: use one of {', '.join(known)}")

    def pick(self, rows: int) -> Engine:
        """The engine for an input of ``rows`` rows."""
        if self.engine is not Engine.AUTO:
            return self.engine
        return Engine.LOCAL if rows < self.local_below_rows else self.distributed


def read_blocks(rows: int, files: int, cpus: int, rows_per_block: int) -> int:
    """How many read tasks a Ray Data job over ``files`` Parquet files takes: one per ``rows_per_block`` rows,
    at least one per CPU (so every CPU reads), never more than the files (a file is read whole)."""
    if rows_per_block < 1:
        raise ValueError(f"rows_per_block must be >= 1, got {rows_per_block}")
    wanted = max(cpus, -(-rows // rows_per_block))
    return max(1, min(files, wanted))


__all__ = ["Engine", "EngineChoice", "read_blocks"]
