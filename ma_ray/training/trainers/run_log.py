"""The run's log lines that outlive a worker, kept next to its checkpoints."""

from __future__ import annotations

import logging
import time

import pyarrow.fs as pafs

from ma_ray.training.checkpoint_store import CheckpointStore

logger = logging.getLogger("ma_ray.training")


LOG_DIR = "_log"


class RunLog:
    """The run's log lines that outlive a worker: rank 0 rewrites ``<run>/_log/<attempt>.log`` on every line, so a
    killed attempt leaves what it did. The driver reads every attempt's file into ``TrainingOutcome.log_lines``."""

    def __init__(self, store: CheckpointStore, rank: int) -> None:
        self.store, self.rank = store, rank
        self.path = f"{store.root}/{LOG_DIR}/{time.time_ns():x}.log"
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        logger.info(line)
        if self.rank != 0:
            return
        self.lines.append(line)
        self.store.fs.create_dir(self.path.rsplit("/", 1)[0], recursive=True)
        with self.store.fs.open_output_stream(self.path) as out:
            out.write("\n".join(self.lines).encode())

    @staticmethod
    def read(store: CheckpointStore) -> list[str]:
        """Every attempt's lines, oldest attempt first."""
        selector = pafs.FileSelector(f"{store.root}/{LOG_DIR}", allow_not_found=True)
        lines: list[str] = []
        for info in sorted(store.fs.get_file_info(selector), key=lambda i: i.base_name):
            with store.fs.open_input_stream(info.path) as stream:
                lines.extend(stream.read().decode().splitlines())
        return lines
