"""The job controller as its callers reach it: find or start the cluster's one controller, submit a spec, read a
record, wait for a job to end."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

import ray

from actors.job_controller.actor import NAME, NAMESPACE, PREEMPT_GRACE_S, JobController
from ma_ray.config import Settings
from ma_ray.jobs import (
    ClusterSpec,
    JobRecord,
    SpecError,
    TrainingJobSpec,
    portable_settings,
    recorded_faults,
    settings_fingerprint,
)
from ma_ray.training import FaultInjection


class ControllerConflictError(RuntimeError):
    """The cluster's controller works with other stores than the caller's settings name."""


def running_controller() -> Any | None:
    """The cluster's job controller, or None if none runs."""
    try:
        return ray.get_actor(NAME, namespace=NAMESPACE)
    except ValueError:
        return None


def job_controller(
    settings: Settings, clusters: Iterable[ClusterSpec], poll_s: float = 1.0, preempt_grace_s: float = PREEMPT_GRACE_S
) -> Any:
    """The running controller, or a new one (detached, so it outlives its creator). Two callers racing get one.
    ``preempt_grace_s``: how long a preempted job may take to checkpoint before its Ray job is stopped.
    Raises ControllerConflictError if the running one was started with other stores or URIs."""
    running = running_controller()
    if running is not None:
        theirs = ray.get(running.fingerprint.remote())
        if theirs != settings_fingerprint(settings):
            raise ControllerConflictError(
                f"the job controller in this Ray cluster works with other settings (fingerprint {theirs}): use "
                "the settings it was started with, or stop it (ray.kill the actor ma-ray-job-controller in "
                "namespace ma-ray) and start it again"
            )
        return running
    return JobController.options(name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True).remote(
        portable_settings(settings),
        [c.model_dump(mode="json") for c in clusters],
        poll_s,
        preempt_grace_s=preempt_grace_s,
    )


def record_of(data: dict[str, Any]) -> JobRecord:
    """The job record in a controller answer (``status`` adds events and the outcome to it)."""
    names = {f.name for f in fields(JobRecord)}
    return JobRecord.from_dict({k: v for k, v in data.items() if k in names})


def submit(controller: Any, spec: TrainingJobSpec, faults: FaultInjection | None = None) -> JobRecord:
    """Submit through the controller; ``SpecError`` (raised here, with every reason) if it refused the spec.
    ``faults`` is a test hook, refused unless the controller's settings turn test hooks on."""
    answer = ray.get(controller.submit.remote(spec.model_dump(mode="json"), recorded_faults(faults)))
    if "refused" in answer:
        raise SpecError(answer["refused"])
    return JobRecord.from_dict(answer["job"])


def wait(controller: Any, job_id: str, timeout_s: float, poll_s: float = 1.0) -> JobRecord:
    """Block until the job is terminal; ``TimeoutError`` (naming its state) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = record_of(ray.get(controller.status.remote(job_id)))
        if record.state.terminal:
            return record
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {record.state} after {timeout_s:.0f}s: {record.message}")
        time.sleep(poll_s)
