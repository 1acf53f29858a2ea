"""The controller's preemption notice: the marker it leaves and the trainers read, the grace period, and the
scheduler holding a preempted job at its place while its attempt checkpoints."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from ma_ray.jobs.clusters import Cluster, CostClass, Node
from ma_ray.jobs.resources import Resources
from ma_ray.jobs.scheduler import JobRequest, Preempt, Start, TieredScheduler
from ma_ray.jobs.workflow import AttemptEnd, Draining
from ma_ray.training.trainers.preemption import (
    ControlNotice,
    clear_preemption_notice,
    notice_path,
    send_preemption_notice,
)


def test_a_notice_is_read_with_the_seconds_to_its_deadline_until_cleared(tmp_path: Path) -> None:
    notice = ControlNotice(str(tmp_path), "run-1", min_interval_s=0)
    assert notice.seconds_left() is None
    send_preemption_notice(str(tmp_path), "run-1", {"by": "urgent-1", "attempt": 2, "deadline": time.time() + 60})
    assert (tmp_path / "run-1" / "_control" / "preempt").is_file()
    assert 50 < notice.seconds_left() <= 60
    assert ControlNotice(str(tmp_path), "run-2", min_interval_s=0).seconds_left() is None  # another run's
    clear_preemption_notice(str(tmp_path), "run-1")
    assert notice.seconds_left() is None
    clear_preemption_notice(str(tmp_path), "run-1")  # nothing left to clear: no error


def test_a_notice_without_a_readable_deadline_still_counts(tmp_path: Path) -> None:
    fs, path = notice_path(str(tmp_path), "run")
    fs.create_dir(path.rsplit("/", 1)[0])
    with fs.open_output_stream(path) as out:
        out.write(b'{"by": "urg')  # caught mid-write
    assert ControlNotice(str(tmp_path), "run", min_interval_s=0).seconds_left() == math.inf
    send_preemption_notice(str(tmp_path), "run", {"by": "urgent"})
    assert ControlNotice(str(tmp_path), "run", min_interval_s=0).seconds_left() == math.inf


def test_a_passed_deadline_leaves_no_time(tmp_path: Path) -> None:
    send_preemption_notice(str(tmp_path), "run", {"deadline": time.time() - 5})
    assert ControlNotice(str(tmp_path), "run", min_interval_s=0).seconds_left() < 0


def test_rank_zero_looks_at_most_once_per_interval(tmp_path: Path) -> None:
    notice = ControlNotice(str(tmp_path), "run", min_interval_s=3600)
    assert notice.seconds_left() is None  # the first look
    send_preemption_notice(str(tmp_path), "run", {"by": "urgent"})
    assert notice.seconds_left() is None  # too soon to look again
    notice.checked_at -= 3600
    assert notice.seconds_left() == math.inf


def test_the_grace_period_ends_once() -> None:
    draining = Draining("urgent", sent_at=1000.0, grace_s=120.0)
    assert draining.deadline == 1120.0
    assert not draining.overdue(1119.9)
    assert draining.overdue(1120.0)
    draining.stopped = True
    assert not draining.overdue(5000.0)


@pytest.mark.parametrize(
    ("end", "stopped", "detail"),
    [
        (AttemptEnd.PREEMPTED, False, "checkpointed on the notice (preempted by urgent)"),
        (AttemptEnd.PREEMPTED, True, "checkpointed on the notice (preempted by urgent)"),
        (
            AttemptEnd.STOPPED,
            True,
            "stopped after the 120s grace period (preempted by urgent); resumes from its last periodic checkpoint",
        ),
        (AttemptEnd.SUCCEEDED, False, "ended succeeded after the notice (preempted by urgent)"),
    ],
)
def test_the_event_says_how_the_preempted_attempt_ended(end: AttemptEnd, stopped: bool, detail: str) -> None:
    assert Draining("urgent", 0.0, 120.0, stopped).detail(end) == detail


def _cluster(cpus: float) -> Cluster:
    return Cluster("c", "http://c:8265", "east", CostClass.ON_DEMAND, (Node("c-n0", Resources(cpus, 0, 1000)),))


def _job(job_id: str, tier: int, cpu: float = 1) -> JobRequest:
    return JobRequest(job_id, tier, Resources(cpu=cpu))


def test_a_held_job_is_passed_over_and_keeps_its_place_until_let_go() -> None:
    scheduler = TieredScheduler([_cluster(1)], headroom=0.0)
    scheduler.submit(_job("victim", 3))
    scheduler.schedule()
    scheduler.submit(_job("urgent", 1))
    decisions = scheduler.schedule()
    assert [(type(d), d.job_id) for d in decisions] == [(Preempt, "victim"), (Start, "urgent")]
    scheduler.hold("victim")
    scheduler.submit(_job("later", 3))
    scheduler.finish("urgent")
    assert [d.job_id for d in scheduler.schedule()] == ["later"]  # the held victim does not block its tier
    scheduler.finish("later")
    assert scheduler.schedule() == []
    scheduler.submit(_job("last", 3))
    scheduler.unhold("victim")
    assert [d.job_id for d in scheduler.schedule()] == ["victim"]  # ahead of "last": its place was kept
    assert scheduler.queued() == ["last"]


def test_only_a_queued_job_can_be_held_and_a_cancel_forgets_the_hold() -> None:
    scheduler = TieredScheduler([_cluster(1)], headroom=0.0)
    with pytest.raises(KeyError, match="not queued"):
        scheduler.hold("nobody")
    scheduler.submit(_job("held", 3))
    scheduler.hold("held")
    assert scheduler.schedule() == []
    scheduler.cancel("held")
    scheduler.submit(_job("held", 3))
    assert [d.job_id for d in scheduler.schedule()] == ["held"]
