"""The job workflow: legal transitions only, and the retry / requeue / register decisions after an attempt."""

from __future__ import annotations

import pytest

from ma_ray.jobs.workflow import (
    TRANSITIONS,
    Action,
    AttemptEnd,
    Draining,
    IllegalTransitionError,
    JobRecord,
    JobState,
    apply,
    classify,
    decide,
    registered,
    started,
    submission_id,
    transition,
)


def running(max_attempts: int = 3, failures: int = 0) -> JobRecord:
    record = JobRecord("eta-1", {"name": "eta"}, tier=1, max_attempts=max_attempts, failures=failures)
    return started(record, "local", "http://127.0.0.1:8265")


def test_start_counts_attempts_and_names_the_ray_job() -> None:
    first = running()
    assert (first.state, first.attempt, first.cluster) == (JobState.RUNNING, 1, "local")
    assert first.submission_id == submission_id("eta-1", 1) == "eta-1-attempt-1"
    retried = apply(first, Action.RETRY)
    second = started(retried, "other", "http://other:8265")
    assert (second.attempt, second.submission_id, second.failures) == (2, "eta-1-attempt-2", 1)


def test_terminal_states_allow_nothing_and_illegal_moves_raise() -> None:
    for state in JobState:
        assert state.terminal == (not TRANSITIONS[state])
    with pytest.raises(IllegalTransitionError, match="cannot go from pending to succeeded"):
        transition(JobRecord("j", {}), JobState.SUCCEEDED)
    done = registered(apply(running(), Action.REGISTER), "eta:1")
    assert (done.state, done.model_version) == (JobState.SUCCEEDED, "eta:1")
    with pytest.raises(IllegalTransitionError):
        started(done, "local", "http://x")


@pytest.mark.parametrize(
    ("ray_status", "outcome", "expected"),
    [
        ("PENDING", None, None),
        ("RUNNING", "succeeded", None),
        ("SUCCEEDED", "succeeded", AttemptEnd.SUCCEEDED),
        ("SUCCEEDED", "preempted", AttemptEnd.PREEMPTED),
        ("SUCCEEDED", None, AttemptEnd.FAILED),  # exited cleanly without writing its outcome
        ("FAILED", None, AttemptEnd.FAILED),
        ("FAILED", "preempted", AttemptEnd.PREEMPTED),
        ("STOPPED", None, AttemptEnd.STOPPED),
    ],
)
def test_classify(ray_status: str, outcome: str | None, expected: AttemptEnd | None) -> None:
    assert classify(ray_status, outcome) == expected


def test_failures_retry_until_max_attempts_then_fail() -> None:
    record = running(max_attempts=3)
    for attempt in (1, 2):
        assert decide(record, AttemptEnd.FAILED) is Action.RETRY
        record = apply(record, Action.RETRY, "worker died")
        assert record.state is JobState.PENDING and record.failures == attempt
        assert "retrying from the newest checkpoint: worker died" in record.message
        record = started(record, "local", "http://x")
    assert decide(record, AttemptEnd.FAILED) is Action.FAIL
    failed = apply(record, Action.FAIL, "boom")
    assert (failed.state, failed.failures, failed.message) == (JobState.FAILED, 3, "failed after 3 attempt(s): boom")


def test_preemption_requeues_without_using_an_attempt() -> None:
    record = running(max_attempts=1)
    assert decide(record, AttemptEnd.PREEMPTED) is Action.REQUEUE
    assert decide(record, AttemptEnd.STOPPED) is Action.REQUEUE
    queued = apply(record, Action.REQUEUE, "preempted by eta-2")
    assert (queued.state, queued.failures) == (JobState.PENDING, 0)
    assert queued.message.endswith("queued to resume: preempted by eta-2")


def test_a_scaled_up_attempt_that_checkpointed_restarts_wider_at_once_without_using_an_attempt() -> None:
    record = started(JobRecord("eta-1", {"name": "eta"}, max_attempts=1), "local", "http://x", workers=1)
    resizing = Draining.resizing(2, sent_at=0.0, grace_s=120.0)
    assert not resizing.held and resizing.reason == "scaling to 2 workers"
    assert decide(record, AttemptEnd.PREEMPTED, resizing) is Action.RESIZE
    assert decide(record, AttemptEnd.STOPPED, resizing) is Action.RESIZE  # the notice ignored: stopped after grace
    restarting = apply(record, Action.RESIZE, resizing.detail(AttemptEnd.PREEMPTED))
    assert (restarting.state, restarting.failures) == (JobState.PENDING, 0)
    assert (
        restarting.message == "attempt 1 preempted; restarting wider: checkpointed on the notice (scaling to 2 workers)"
    )
    wider = started(restarting, "local", "http://x", workers=2)
    assert (wider.attempt, wider.workers, wider.submission_id) == (2, 2, "eta-1-attempt-2")


def test_an_attempt_that_ends_otherwise_before_its_resize_takes_the_normal_path() -> None:
    record = running(max_attempts=2)
    resizing = Draining.resizing(2, sent_at=0.0, grace_s=120.0)
    assert decide(record, AttemptEnd.SUCCEEDED, resizing) is Action.REGISTER
    assert decide(record, AttemptEnd.FAILED, resizing) is Action.RETRY
    cancelling = JobRecord.from_dict({**record.to_dict(), "cancel_requested": True})
    assert decide(cancelling, AttemptEnd.STOPPED, resizing) is Action.CANCEL
    preempted = Draining("urgent", sent_at=0.0, grace_s=120.0)  # a preemption: queued again, held meanwhile
    assert preempted.held and decide(record, AttemptEnd.PREEMPTED, preempted) is Action.REQUEUE


def test_cancel_wins_and_success_registers() -> None:
    record = running()
    cancelling = JobRecord.from_dict({**record.to_dict(), "cancel_requested": True})
    assert decide(cancelling, AttemptEnd.STOPPED) is Action.CANCEL
    assert decide(cancelling, AttemptEnd.SUCCEEDED) is Action.CANCEL
    assert apply(cancelling, Action.CANCEL).state is JobState.CANCELLED
    assert decide(record, AttemptEnd.SUCCEEDED) is Action.REGISTER
    assert apply(record, Action.REGISTER).state is JobState.REGISTERING


def test_records_round_trip_through_dicts() -> None:
    record = running()
    assert JobRecord.from_dict(record.to_dict()) == record
    assert record.to_dict()["state"] == "running"


def test_a_job_server_without_an_agent_yet_is_busy_not_a_failed_attempt() -> None:
    from ma_ray.jobs.workflow import job_server_busy

    refused = "Request failed with status code 500: No available agent to submit job, please try again later.."
    assert job_server_busy(refused)
    assert not job_server_busy("Request failed with status code 400: entrypoint must be a string")
    assert not job_server_busy("Failed to connect to Ray at address: http://127.0.0.1:8265.")
