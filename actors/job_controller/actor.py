"""The job controller actor: one detached, named Ray actor (``ma-ray-job-controller`` in namespace ``ma-ray``) that
takes training job specs through the seed's workflow:

1. submission: validate the spec (schema, features in the catalog, snapshots, resources), resolve its snapshots,
   estimate its resources (the scheduler request), persist it, queue it in the tiered scheduler;
2. cluster selection: the scheduler's decisions (fair share across tiers, FFD packing, tier-1 headroom and
   preemption, data locality, spot for tiers 3-4);
3. job creation: a Ray job on the chosen cluster's job-submission address, ``<python> -m apps.train --job-id ...``
   with the interpreter that cluster's jobs use (`ma_ray.jobs.entrypoint`);
4. monitoring: poll each attempt; a failed attempt is retried with the same run id (the trainer resumes from its
   newest valid checkpoint) until ``max_attempts`` failed; a preempted one is queued again. A job the scheduler
   preempts for a tier-1 job gets a notice in its run's checkpoint store, checkpoints and ends as preempted (the
   controller stops its Ray job if it has not ended within ``preempt_grace_s``); it is held in its queue
   meanwhile, then resumes from that checkpoint. A running elastic job the scheduler scales up gets the same
   notice and, once its attempt ended, is started again at once with the added workers (not queued again: the
   scheduler already counts them as the job's);
5. completion: archive the logs, register the model version with its lineage in Gallery, free the resources.

Every state change is written to the job store first (records and events), so a new controller started after
a crash reloads the jobs and goes on monitoring the Ray jobs that kept running meanwhile.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import ray

from ma_ray.config import load_settings
from ma_ray.jobs import (
    DEFAULT_HEADROOM,
    Action,
    AttemptEnd,
    ClusterRegistry,
    ClusterSpec,
    Draining,
    JobRecord,
    JobState,
    Preempt,
    ScaleUp,
    SpecError,
    Start,
    TieredScheduler,
    fault_refusals,
    job_python,
    job_request,
    job_status,
    known_job,
    open_job_store,
    parse_spec,
    register_in_gallery,
    settings_env,
    settings_fingerprint,
    training_entrypoint,
    validate_job,
    workflow,
)
from ma_ray.metrics import RayMetrics
from ma_ray.training import checkpoint_root
from ma_ray.training.trainers import clear_preemption_notice, send_preemption_notice

NAME = workflow.CONTROLLER_NAME
NAMESPACE = workflow.CONTROLLER_NAMESPACE
_ERROR_LINE = re.compile(r"^\s*([\w.]*(Error|Exception)\b|Killed)")  # a Python exception line
PREEMPT_GRACE_S = 120.0  # as long as a cloud's spot notice: a checkpoint that takes longer is not waited for

logger = logging.getLogger("ma_ray.jobs")


@ray.remote(num_cpus=0, max_concurrency=8)
class JobController:
    """See the module docstring. Methods return plain dicts (job records) so any client can read them."""

    def __init__(
        self,
        settings: dict[str, Any],
        clusters: list[dict[str, Any]],
        poll_s: float = 1.0,
        headroom: float = DEFAULT_HEADROOM,
        preempt_grace_s: float = PREEMPT_GRACE_S,
    ) -> None:
        self._settings = load_settings(**settings)
        self._registry = ClusterRegistry(ClusterSpec.model_validate(c).to_cluster() for c in clusters)
        self._headroom = headroom
        self._scheduler = TieredScheduler(self._registry, headroom=headroom)
        self._store = open_job_store(self._settings)
        self._clients: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._poll_s = poll_s
        self._preempt_grace_s = preempt_grace_s
        self._draining: dict[str, Draining] = {}  # preempted or resizing jobs whose attempt still runs, by job id
        self._stop = threading.Event()
        metrics = RayMetrics()
        self._jobs = metrics.gauge(workflow.TRAINING_JOBS, "training jobs by state", ("state",))
        self._attempts = metrics.counter(workflow.TRAINING_ATTEMPTS_TOTAL, "ended training attempts, by how", ("end",))
        self._reload()
        self._thread = threading.Thread(target=self._loop, name="job-controller", daemon=True)
        self._thread.start()

    # ---- the API ---------------------------------------------------------------------------------------------
    def submit(self, spec: dict[str, Any], faults: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate and queue a job: ``{"job": record}``, or ``{"refused": [reasons]}`` with nothing submitted.
        ``faults`` is a test hook (`ma_ray.jobs.fault_hooks`), refused unless the settings turn test hooks on."""
        try:
            parsed = parse_spec(spec)
            validated = validate_job(parsed, self._settings, self._registry, self._headroom)
        except SpecError as error:
            return {"refused": error.reasons + fault_refusals(faults or {}, self._settings)}
        if refused := fault_refusals(faults or {}, self._settings):
            return {"refused": refused}
        job_id = f"{parsed.name}-{uuid.uuid4().hex[:8]}"
        record = JobRecord(
            job_id,
            parsed.model_dump(mode="json"),
            tier=parsed.tier,
            max_attempts=parsed.max_attempts,
            training_snapshot=validated.training_snapshot,
            message="queued",
            faults=dict(faults or {}),
        )
        with self._lock:
            self._save(
                record, f"submitted: {parsed.framework}, tier {parsed.tier}, snapshots {record.training_snapshot}"
            )
            self._scheduler.submit(job_request(job_id, parsed))
        self._wake()
        return {"job": record.to_dict()}

    def list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self._store.list()]

    def status(self, job_id: str) -> dict[str, Any]:
        """The record and its events; ``KeyError`` for an unknown job."""
        return job_status(self._store, job_id)

    def logs(self, job_id: str) -> dict[int, str]:
        """Archived logs by attempt, plus the live log of a running attempt."""
        record = self._record(job_id)
        logs = self._store.logs(job_id)
        if record.state is JobState.RUNNING and record.attempt not in logs:
            try:
                logs[record.attempt] = self._client(record.address).get_job_logs(record.submission_id)
            except (RuntimeError, ConnectionError) as error:
                logs[record.attempt] = f"(live log unavailable: {error})"
        return logs

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued job now, or stop a running one (it is marked cancelled once its Ray job stopped)."""
        with self._lock:
            record = self._record(job_id)
            if record.state is JobState.PENDING:
                self._scheduler.cancel(job_id)
                record = workflow.transition(record, JobState.CANCELLED, "cancelled while queued")
                self._save(record, "cancelled while queued")
            elif record.state is JobState.RUNNING:
                record = replace(record, cancel_requested=True)
                self._save(record, f"cancel requested; stopping {record.submission_id}")
                self._client(record.address).stop_job(record.submission_id)
            return record.to_dict()

    def tick(self) -> None:
        """One monitoring and scheduling round (the background loop runs one every ``poll_s``)."""
        with self._lock:
            for record in self._store.list():
                if record.state is JobState.RUNNING:
                    self._check(record)
            self._stop_overdue()
            self._carry_out(self._scheduler.schedule())
            states = Counter(r.state for r in self._store.list())
            for state in JobState:
                self._jobs.record(states[state], {"state": state.value})

    def fingerprint(self) -> str:
        """`settings_fingerprint` of the settings this controller was started with."""
        return settings_fingerprint(self._settings)

    def stop(self) -> None:
        """Stop the background loop (tests, shutdown); jobs and Ray jobs are left as they are."""
        self._stop.set()
        self._thread.join()

    # ---- monitoring --------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # one bad round (an unreachable cluster, a store timeout) must not end monitoring
                logger.exception("job controller round failed")
            self._stop.wait(self._poll_s)

    def _wake(self) -> None:
        threading.Thread(target=self.tick, daemon=True).start()

    def _check(self, record: JobRecord) -> None:
        assert record.address is not None and record.submission_id is not None
        try:
            status = self._client(record.address).get_job_status(record.submission_id).value
        except (RuntimeError, ConnectionError) as error:
            logger.warning("cannot reach %s for %s: %s", record.address, record.job_id, error)
            return
        outcome = self._store.outcome(record.job_id, record.attempt)
        end = workflow.classify(status, outcome and outcome.get("status"))
        if end is None:
            return
        self._attempts.record(1, {"end": end.value})
        logs = self._archive(record)
        draining = self._draining.pop(record.job_id, None)
        action = workflow.decide(record, end, draining)
        self._requeue_or_release(record, action, held=draining is not None and draining.held)
        detail = self._failure_reason(record, logs) if end is AttemptEnd.FAILED else ""
        record = workflow.apply(record, action, draining.detail(end) if draining and not detail else detail)
        self._save(record, record.message)
        if action is Action.REGISTER:
            self._register(record, outcome or {})
        elif action is Action.RESIZE:
            self._launch(record, self._scheduler.allocation(record.job_id))

    def _requeue_or_release(self, record: JobRecord, action: Action, held: bool) -> None:
        """After an attempt ended: queue the job again for a retry or a preemption, or free it. A job preempted
        with a notice is still queued at its place, held: it is only let go. A resized one keeps its allocation."""
        if action is Action.RESIZE:
            return
        again = action in (Action.RETRY, Action.REQUEUE)
        if held and again:
            self._scheduler.unhold(record.job_id)
            return
        self._release(record.job_id)
        if again:
            self._scheduler.submit(job_request(record.job_id, parse_spec(record.spec)))

    def _stop_overdue(self) -> None:
        """Stop the preempted attempts that have not ended within the grace period (they resume from their last
        periodic checkpoint)."""
        for job_id, draining in self._draining.items():
            if not draining.overdue(time.time()):
                continue
            record = self._record(job_id)
            try:
                self._client(record.address).stop_job(record.submission_id)
            except (RuntimeError, ConnectionError) as error:  # tried again next round
                logger.warning("cannot stop %s after its grace period: %s", record.submission_id, error)
                continue
            draining.stopped = True
            late = f"not ended {draining.grace_s:.0f}s after the notice ({draining.reason})"
            self._store.add_event(job_id, f"{late}: stopped {record.submission_id}")

    def _failure_reason(self, record: JobRecord, logs: str) -> str:
        """Ray's one-line verdict (exit code) and the last error line the attempt logged."""
        try:
            message = (self._client(record.address).get_job_info(record.submission_id).message or "").strip()
        except (RuntimeError, ConnectionError):
            message = ""
        verdict = message.splitlines()[0].split(", last available logs")[0] if message else ""
        errors = [line.strip() for line in logs.splitlines() if _ERROR_LINE.search(line)]
        return "; ".join(part for part in (verdict, errors[-1][:300] if errors else "") if part)

    def _archive(self, record: JobRecord) -> str:
        """Copy the attempt's log into the job store (Ray keeps job logs only as long as the cluster lives)."""
        try:
            text = self._client(record.address).get_job_logs(record.submission_id)
        except (RuntimeError, ConnectionError) as error:
            text = f"(logs unavailable: {error})"
        self._store.put_logs(record.job_id, record.attempt, text)
        return text

    def _release(self, job_id: str) -> None:
        if job_id in self._scheduler.running():
            self._scheduler.finish(job_id)
        elif job_id in self._scheduler.queued():
            self._scheduler.cancel(job_id)

    # ---- job creation ------------------------------------------------------------------------------------------
    def _carry_out(self, decisions: Iterable[Start | ScaleUp | Preempt]) -> None:
        for decision in decisions:
            record = self._record(decision.job_id)
            if isinstance(decision, Start):
                if record.state is JobState.PENDING:
                    self._launch(record, decision)
            elif isinstance(decision, Preempt):
                self._preempt(record, decision)
            else:
                self._resize(record, decision)

    def _launch(self, queued: JobRecord, start: Start) -> None:
        cluster = self._registry.get(start.cluster)
        record = workflow.started(queued, cluster.name, cluster.address, start.workers)
        python = job_python(cluster.address, cluster.python)
        entrypoint = training_entrypoint(python, record.job_id, record.attempt, start.workers)
        try:
            clear_preemption_notice(checkpoint_root(self._settings), record.job_id)  # an older attempt's
            self._client(cluster.address).submit_job(
                entrypoint=entrypoint,
                submission_id=record.submission_id,
                runtime_env={"env_vars": settings_env(self._settings)},
                metadata={"ma_ray_job": record.job_id, "attempt": str(record.attempt)},
            )
        except (RuntimeError, OSError) as error:
            self._release(record.job_id)
            if workflow.job_server_busy(str(error)):  # e.g. its node agent is not up yet: not the job's failure
                self._store.add_event(record.job_id, f"{cluster.name} cannot take jobs yet ({error}); queued again")
                self._scheduler.submit(job_request(queued.job_id, parse_spec(queued.spec)))
                return
            failed = workflow.apply(record, workflow.decide(record, workflow.AttemptEnd.FAILED), f"submit: {error}")
            self._save(failed, failed.message)
            if failed.state is JobState.PENDING:
                self._scheduler.submit(job_request(failed.job_id, parse_spec(failed.spec)))
            return
        self._save(
            record, f"{record.submission_id} submitted to {cluster.name} ({cluster.address}), {start.workers} workers"
        )

    def _preempt(self, record: JobRecord, preempt: Preempt) -> None:
        """The scheduler re-queued the job for a tier-1 job: hold it in the queue and send its attempt the notice
        (it checkpoints and ends as preempted; `_check` lets it go then). Without a notice, stop its Ray job."""
        if record.state is not JobState.RUNNING:
            return
        self._scheduler.hold(record.job_id)
        draining = Draining(preempt.by, time.time(), self._preempt_grace_s)
        self._notify(record, draining, f"preemption notice sent (by {preempt.by}); checkpointing")

    def _resize(self, record: JobRecord, grow: ScaleUp) -> None:
        """The scheduler gave a running elastic job more workers: its attempt gets a notice, checkpoints and ends
        as preempted, and `_check` starts it again at once with all of them. A job not running yet gets them at
        its next start (the scheduler's ``Start``); a resize already under way restarts with the newest count."""
        if record.cancel_requested:
            return  # it is stopping: its end frees the added workers with the rest
        if record.state is not JobState.RUNNING:
            self._store.add_event(record.job_id, f"{grow.workers} workers available; used on its next start")
            return
        draining = self._draining.get(record.job_id)
        if draining is not None:  # a preempted job is no longer the scheduler's to grow: this one is resizing
            draining.workers = grow.workers
            self._store.add_event(record.job_id, f"{grow.workers} workers available; the restart uses them")
            return
        draining = Draining.resizing(grow.workers, time.time(), self._preempt_grace_s)
        self._notify(record, draining, f"scaling to {grow.workers} workers: checkpointing to restart wider")

    def _notify(self, record: JobRecord, draining: Draining, message: str) -> None:
        """Send the running attempt the notice (it checkpoints and ends as preempted; `_check` goes on from
        there). Without a notice, stop its Ray job: it resumes from its last periodic checkpoint."""
        self._draining[record.job_id] = draining
        notice = {"reason": draining.reason, "attempt": record.attempt, "sent_at": draining.sent_at,
                  "deadline": draining.deadline}  # fmt: skip
        try:
            send_preemption_notice(checkpoint_root(self._settings), record.job_id, notice)
        except OSError as error:
            draining.stopped = True
            self._store.add_event(record.job_id, f"cannot send the notice ({error}): stopping the attempt")
            self._client(record.address).stop_job(record.submission_id)
            return
        self._save(
            replace(record, message=message, updated_at=time.time()),
            f"{message}, stopped after {draining.grace_s:.0f}s otherwise",
        )

    # ---- completion -------------------------------------------------------------------------------------------
    def _register(self, record: JobRecord, outcome: dict[str, Any]) -> None:
        try:
            model_id = register_in_gallery(self._settings, record, parse_spec(record.spec), outcome)
        except Exception as error:  # a Gallery refusal ends the job with its reason instead of a silent hang
            failed = workflow.transition(record, JobState.FAILED, f"registration failed: {error}")
            self._save(failed, failed.message)
            return
        self._save(workflow.registered(record, model_id), f"registered {model_id} with lineage")

    # ---- helpers ------------------------------------------------------------------------------------------------
    def _record(self, job_id: str) -> JobRecord:
        return known_job(self._store, job_id)

    def _save(self, record: JobRecord, event: str) -> None:
        self._store.put(record)
        self._store.add_event(record.job_id, event)

    def _client(self, address: str | None) -> Any:
        from ray.job_submission import JobSubmissionClient

        assert address is not None
        if address not in self._clients:
            self._clients[address] = JobSubmissionClient(address)
        return self._clients[address]

    def _reload(self) -> None:
        """Queue the pending jobs again and re-admit the running ones (their Ray jobs outlived the old controller)."""
        running = []
        for record in self._store.list():
            if record.state in (JobState.PENDING, JobState.RUNNING):
                self._scheduler.submit(job_request(record.job_id, parse_spec(record.spec)))
                if record.state is JobState.RUNNING:
                    running.append(record.job_id)
            elif record.state is JobState.REGISTERING:
                self._register(record, self._store.outcome(record.job_id, record.attempt) or {})
        for decision in self._scheduler.schedule():
            if decision.job_id in running:
                continue  # already running: the decision only re-records its allocation
            self._carry_out([decision])
        for job_id in running:
            self._store.add_event(job_id, "controller restarted; monitoring resumed")
