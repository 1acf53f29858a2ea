"""Which engine runs a data job: this process (Arrow kernels on its own threads) or Ray Data (tasks across the
cluster). Distribution has a fixed cost (tasks to schedule, blocks through the object store), so a job below a
measured size runs in one process, and one above it on Ray Data; each job documents its threshold
(``local_below_rows``) and a caller can override it, or force an engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Engine(StrEnum):
    AUTO = "auto"  # by size: LOCAL below the job's threshold, RAY_DATA at or above it
    LOCAL = "local"
    RAY_DATA = "ray_data"


@dataclass(frozen=True)
class EngineChoice:
    """How a job picks its engine: ``engine`` (AUTO by default) and the size below which AUTO runs locally."""

    engine: Engine = Engine.AUTO
    local_below_rows: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine", Engine(self.engine))  # a name from a CLI or a spec
        if self.local_below_rows < 0:
            raise ValueError(f"local_below_rows must be >= 0 (0: always Ray Data), got {self.local_below_rows}")

    def pick(self, rows: int) -> Engine:
        """The engine for an input of ``rows`` rows."""
        if self.engine is not Engine.AUTO:
            return self.engine
        return Engine.LOCAL if rows < self.local_below_rows else Engine.RAY_DATA


def read_blocks(rows: int, files: int, cpus: int, rows_per_block: int) -> int:
    """How many read tasks a Ray Data job over ``files`` Parquet files takes: one per ``rows_per_block`` rows,
    at least one per CPU (so every CPU reads), never more than the files (a file is read whole)."""
    if rows_per_block < 1:
        raise ValueError(f"rows_per_block must be >= 1, got {rows_per_block}")
    wanted = max(cpus, -(-rows // rows_per_block))
    return max(1, min(files, wanted))


__all__ = ["Engine", "EngineChoice", "read_blocks"]
