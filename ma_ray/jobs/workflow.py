"""The job controller's workflow as pure data and decisions: job states, legal transitions, what to do when an
attempt ends. No I/O; the controller actor carries the decisions out and persists every record it changes.

```
PENDING --start--> RUNNING --attempt succeeded--> REGISTERING --registered--> SUCCEEDED
   ^                  |  \\--out of attempts-------------------------------> FAILED
   +--retry/preempt---+   \\--cancel----------------------------------------> CANCELLED
```

A failed attempt is retried (a new Ray job, same ``run_id``, so the trainer resumes from its newest valid
checkpoint) until ``max_attempts`` submissions have failed. A preempted attempt (the trainer checkpointed on
the notice, or the scheduler preempted it for a tier-1 job) goes back to PENDING without using up an attempt.
A job the scheduler preempts stays RUNNING while its attempt checkpoints on the controller's notice
(`Draining`); the controller stops it if it has not ended within the grace period. An elastic job the scheduler
scales up gets the same notice; once its attempt ended preempted (or stopped), it is started again at once with
the added workers (``RESIZE``), keeping its allocation and using up no attempt.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

CONTROLLER_NAME = "ma-ray-job-controller"
CONTROLLER_NAMESPACE = "ma-ray"
TRAINING_JOBS = "ma_ray_training_jobs"  # gauge by state: the scheduler's queues and what runs
TRAINING_ATTEMPTS_TOTAL = "ma_ray_training_attempts_total"  # ended attempts, by how they ended
METRIC_NAMES = (TRAINING_JOBS, TRAINING_ATTEMPTS_TOTAL)
"""The job controller is one detached actor of this name and namespace; clients find it by name."""


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    REGISTERING = "registering"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.PENDING, JobState.REGISTERING, JobState.FAILED, JobState.CANCELLED}),
    JobState.REGISTERING: frozenset({JobState.SUCCEEDED, JobState.FAILED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class IllegalTransitionError(ValueError):
    """A state change the workflow does not allow (a controller bug, or a race with a cancel)."""


class AttemptEnd(StrEnum):
    """How a Ray job attempt ended, from its Ray status and the outcome the entrypoint wrote."""

    SUCCEEDED = "succeeded"
    PREEMPTED = "preempted"
    FAILED = "failed"
    STOPPED = "stopped"


class Action(StrEnum):
    REGISTER = "register"
    RETRY = "retry"
    REQUEUE = "requeue"
    FAIL = "fail"
    CANCEL = "cancel"
    RESIZE = "resize"


@dataclass(frozen=True)
class JobRecord:
    """A job as the job store keeps it. ``spec`` is the validated spec as JSON-able data.

    ``attempt`` counts Ray job submissions (the current one while RUNNING); ``failures`` the failed ones.
    ``submission_id`` is the Ray job of the current or last attempt; ``cluster``/``address`` where it runs,
    ``workers`` with how many workers (0: not known, a record written before workers were recorded)."""

    job_id: str
    spec: dict[str, Any]
    state: JobState = JobState.PENDING
    tier: int = 4
    attempt: int = 0
    failures: int = 0
    max_attempts: int = 3
    cluster: str | None = None
    address: str | None = None
    submission_id: str | None = None
    workers: int = 0
    model_version: str | None = None
    training_snapshot: str | None = None
    message: str = ""
    cancel_requested: bool = False
    faults: dict[str, Any] = field(default_factory=dict)  # a test hook, never from the spec (jobs.fault_hooks)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        return cls(**{**data, "state": JobState(data["state"])})


@dataclass
class Draining:
    """A running attempt sent a notice at ``sent_at`` (epoch seconds): preempted for job ``by``, or, with
    ``workers`` set, scaled up to that many workers (see `resizing`). It checkpoints and ends by itself, or the
    controller stops it once ``grace_s`` have passed."""

    by: str
    sent_at: float
    grace_s: float
    stopped: bool = False
    workers: int | None = None

    @classmethod
    def resizing(cls, workers: int, sent_at: float, grace_s: float) -> Draining:
        """An attempt that ends to start again at once with ``workers`` workers (the scheduler already gave them)."""
        return cls("", sent_at, grace_s, workers=workers)

    @property
    def held(self) -> bool:
        """Whether the scheduler holds the job in its queue meanwhile (a preemption; a resize keeps it running)."""
        return self.workers is None

    @property
    def reason(self) -> str:
        """Why the attempt got the notice, for events and the notice itself."""
        return f"preempted by {self.by}" if self.workers is None else f"scaling to {self.workers} workers"

    @property
    def deadline(self) -> float:
        return self.sent_at + self.grace_s

    def overdue(self, now: float) -> bool:
        """Whether to stop the attempt now: the grace period is over and it was not stopped yet."""
        return not self.stopped and now >= self.deadline

    def detail(self, end: AttemptEnd) -> str:
        """How the preempted attempt ended, for its event."""
        if end is AttemptEnd.PREEMPTED:
            return f"checkpointed on the notice ({self.reason})"
        if self.stopped:
            return (
                f"stopped after the {self.grace_s:.0f}s grace period ({self.reason}); resumes from its last periodic "
                "checkpoint"
            )
        return f"ended {end.value} after the notice ({self.reason})"


def transition(record: JobRecord, to: JobState, message: str | None = None, **changes: Any) -> JobRecord:
    """``record`` moved to ``to`` (with other field changes); raises ``IllegalTransitionError`` if not allowed."""
    if to not in TRANSITIONS[record.state]:
        raise IllegalTransitionError(f"job {record.job_id}: cannot go from {record.state} to {to}")
    return replace(
        record, state=to, message=record.message if message is None else message, updated_at=time.time(), **changes
    )


def started(record: JobRecord, cluster: str, address: str, workers: int = 0) -> JobRecord:
    """The next attempt was submitted to ``cluster`` as a Ray job with ``workers`` workers."""
    attempt = record.attempt + 1
    return transition(
        record,
        JobState.RUNNING,
        f"attempt {attempt} on {cluster}",
        attempt=attempt,
        cluster=cluster,
        address=address,
        submission_id=submission_id(record.job_id, attempt),
        workers=workers,
    )


def submission_id(job_id: str, attempt: int) -> str:
    """The Ray job id of an attempt: unique per attempt, readable by people."""
    return f"{job_id}-attempt-{attempt}"


def classify(ray_status: str, outcome_status: str | None) -> AttemptEnd | None:
    """How an attempt ended, or None while its Ray job is still pending or running.

    The outcome the entrypoint wrote wins over Ray's status: a preempted run exits cleanly but is not done."""
    if ray_status in ("PENDING", "RUNNING"):
        return None
    if outcome_status == "preempted":
        return AttemptEnd.PREEMPTED
    if ray_status == "SUCCEEDED":
        return AttemptEnd.SUCCEEDED if outcome_status == "succeeded" else AttemptEnd.FAILED
    if ray_status == "STOPPED":
        return AttemptEnd.STOPPED
    return AttemptEnd.FAILED


def job_server_busy(submit_error: str) -> bool:
    """A refused submission that says to try again (Ray's job server found no node agent to run it within its
    timeout, as right after a cluster starts; or a 503): the job waits in its queue instead of using up an attempt."""
    return "status code 503" in submit_error or "try again later" in submit_error


def decide(record: JobRecord, end: AttemptEnd, draining: Draining | None = None) -> Action:
    """What to do after an attempt ended: register, retry, requeue, fail or record a cancel; ``RESIZE`` (start it
    again at once) for an attempt that ended preempted or stopped after a scale-up notice (``draining``)."""
    if record.cancel_requested:
        return Action.CANCEL
    if end is AttemptEnd.SUCCEEDED:
        return Action.REGISTER
    if end in (AttemptEnd.PREEMPTED, AttemptEnd.STOPPED):  # stopped without a cancel: the scheduler preempted it
        return Action.REQUEUE if draining is None or draining.held else Action.RESIZE
    return Action.RETRY if record.failures + 1 < record.max_attempts else Action.FAIL


def apply(record: JobRecord, action: Action, detail: str = "") -> JobRecord:
    """The record after ``action`` (REGISTER moves to REGISTERING; the caller finishes with ``registered``)."""
    suffix = f": {detail}" if detail else ""
    if action is Action.REGISTER:
        return transition(record, JobState.REGISTERING, f"attempt {record.attempt} succeeded; registering")
    if action is Action.REQUEUE:
        return transition(record, JobState.PENDING, f"attempt {record.attempt} preempted; queued to resume{suffix}")
    if action is Action.RESIZE:
        return transition(record, JobState.PENDING, f"attempt {record.attempt} preempted; restarting wider{suffix}")
    if action is Action.CANCEL:
        return transition(record, JobState.CANCELLED, "cancelled")
    failures = record.failures + 1
    if action is Action.RETRY:
        return transition(
            record,
            JobState.PENDING,
            f"attempt {record.attempt} failed ({failures} of {record.max_attempts}); retrying from the newest "
            f"checkpoint{suffix}",
            failures=failures,
        )
    return transition(record, JobState.FAILED, f"failed after {failures} attempt(s){suffix}", failures=failures)


def registered(record: JobRecord, model_version: str) -> JobRecord:
    return transition(record, JobState.SUCCEEDED, f"registered {model_version}", model_version=model_version)
