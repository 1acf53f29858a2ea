"""The job controller: the actor (`actor`), the calls its clients make (`client`) and its command
(``python -m actors.job_controller``, `__main__`)."""

from actors.job_controller.actor import NAME, NAMESPACE, PREEMPT_GRACE_S, JobController
from actors.job_controller.client import (
    ControllerConflictError,
    job_controller,
    record_of,
    running_controller,
    submit,
    wait,
)

__all__ = [
    "NAME",
    "NAMESPACE",
    "PREEMPT_GRACE_S",
    "ControllerConflictError",
    "JobController",
    "job_controller",
    "record_of",
    "running_controller",
    "submit",
    "wait",
]
