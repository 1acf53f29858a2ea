"""The scale-up notice: the controller's reason travels in the marker into the trainer's log line."""

from __future__ import annotations

import time
from pathlib import Path

from ma_ray.training.checkpoint_policy import CheckpointPolicy
from ma_ray.training.run import FaultInjection
from ma_ray.training.trainers.checkpointing import CheckpointClock
from ma_ray.training.trainers.preemption import ControlNotice, send_preemption_notice
from ma_ray.training.trainers.worker_spec import WorkerSpec


def test_the_notice_carries_its_reason_into_the_trainers_log_line(tmp_path: Path) -> None:
    notice = ControlNotice(str(tmp_path), "run", min_interval_s=0)
    send_preemption_notice(str(tmp_path), "run", {"reason": "scaling to 2 workers", "deadline": time.time() + 60})
    seconds_left = notice.seconds_left()
    assert seconds_left is not None and notice.reason == "scaling to 2 workers"
    spec = WorkerSpec("run", str(tmp_path), "y", ("x",), {}, 60.0, CheckpointPolicy(), None, FaultInjection(), False,
                      None, False, 1.0)  # fmt: skip
    save, line = CheckpointClock(spec).on_notice(7, seconds_left, notice.reason)
    assert save and line == "Preemption notice at step 7: checkpoint_now (scaling to 2 workers)"
    assert CheckpointClock(spec).on_notice(7, seconds_left)[1] == "Preemption notice at step 7: checkpoint_now"
