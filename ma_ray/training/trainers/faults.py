"""Fault injection for the tests of retries and preemption: rank 0 dies like a lost worker, or a node's preemption
notice is simulated, each once per run (markers next to its checkpoints)."""

from __future__ import annotations

import logging
import os
import time

import pyarrow.fs as pafs

from ma_ray.storage import filesystem_and_path
from ma_ray.training.trainers.worker_spec import WorkerSpec

logger = logging.getLogger("ma_ray.training")


class FaultInjector:
    """The test hooks of one attempt. Markers are read once, before any collective call, so every rank sees
    the same answer; the fault's rank writes its marker when it fires, so the next attempt runs clean."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.fs, base = filesystem_and_path(spec.faults.marker_uri or f"{spec.checkpoint_uri}/{spec.run_id}/_faults")
        self.base = base
        self.fail_fired = self._fired("fail")
        self.preempt_fired = self._fired("preempt")

    def _marker(self, kind: str) -> str:
        return f"{self.base}-{kind}" if self.spec.faults.marker_uri else f"{self.base}/{kind}"

    def _fired(self, kind: str) -> bool:
        fired: bool = self.fs.get_file_info(self._marker(kind)).type == pafs.FileType.File
        return fired

    def _fire(self, kind: str) -> None:
        marker = self._marker(kind)
        self.fs.create_dir(marker.rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(marker) as out:
            out.write(str(time.time()).encode())

    def maybe_kill(self, step: int, rank: int) -> None:
        """At ``fail_at_step``, rank 0 dies like a lost worker (once per run)."""
        if rank == 0 and not self.fail_fired and self.spec.faults.fail_at_step == step:
            self._fire("fail")
            logger.warning("fault injection: killing rank 0 at step %d", step)
            os._exit(17)

    def simulated_notice(self, step: int, rank: int) -> bool:
        """True at ``preempt_at_step`` (once per run): a preemption notice as the node would send it."""
        if self.preempt_fired or self.spec.faults.preempt_at_step != step:
            return False
        if rank == 0:
            self._fire("preempt")
        return True
