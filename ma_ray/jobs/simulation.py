"""A discrete-event simulator that drives a scheduler over clusters while jobs arrive over time.

Time is virtual (seconds). A job carries ``duration_s``, its run time at ``max_workers``; its work is
``duration_s * max_workers`` worker-seconds and it progresses at one worker-second per worker per second, so an
elastic job on fewer workers runs longer. A preempted job checkpoints on the notice and keeps all its progress.
The scheduler is built with the simulator's clock and called after every instant at which something happened.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ma_ray.jobs.clusters import Cluster
from ma_ray.jobs.resources import Resources
from ma_ray.jobs.scheduler import Decision, JobRequest, Preempt, ScaleUp, Start


class Scheduler(Protocol):
    def submit(self, job: JobRequest) -> None: ...
    def schedule(self) -> list[Decision]: ...
    def finish(self, job_id: str) -> None: ...


@dataclass(frozen=True)
class SimJob:
    request: JobRequest
    arrival_s: float
    duration_s: float


@dataclass
class JobOutcome:
    """One job's life: ``waited_s`` sums every stretch spent queued, requeues after preemption included."""

    tier: int
    arrival_s: float
    waited_s: float = 0.0
    finished_s: float | None = None
    preemptions: int = 0


@dataclass(frozen=True)
class SimulationReport:
    outcomes: dict[str, JobOutcome]
    makespan_s: float
    utilisation: dict[str, float]  # cpu / gpu / memory_gb: time-averaged share of the total capacity in use
    preemptions: int

    def unfinished(self, tier: int | None = None) -> list[str]:
        return [j for j, o in self.outcomes.items() if o.finished_s is None and tier in (None, o.tier)]

    def wait_percentile(self, tier: int, q: float) -> float:
        waits = [o.waited_s for o in self.outcomes.values() if o.tier == tier]
        return float(np.percentile(waits, q)) if waits else 0.0


class SimClock:
    """The virtual clock handed to the scheduler."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class _Progress:
    job: SimJob
    remaining: float  # worker-seconds
    workers: int = 0
    since: float = 0.0  # last progress update, or when the job (re)entered the queue
    version: int = 0  # bumps invalidate an already scheduled completion event


@dataclass
class _Simulation:
    scheduler: Scheduler
    clock: SimClock
    jobs: dict[str, _Progress] = field(default_factory=dict)
    outcomes: dict[str, JobOutcome] = field(default_factory=dict)
    events: list[tuple[float, int, int, str, int]] = field(default_factory=list)
    usage: Resources = field(default_factory=Resources)
    integral: np.ndarray = field(default_factory=lambda: np.zeros(3))
    last_t: float = 0.0
    seq: int = 0

    def push(self, t: float, kind: int, job_id: str, version: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, kind, self.seq, job_id, version))

    def advance(self, t: float) -> None:
        self.integral += np.array(self.usage.as_tuple()) * (t - self.last_t)
        self.last_t = self.clock.now = t

    def progress(self, p: _Progress) -> None:
        p.remaining = max(p.remaining - p.workers * (self.clock.now - p.since), 0.0)
        p.since = self.clock.now

    def set_workers(self, p: _Progress, workers: int) -> None:
        self.progress(p)
        self.usage = self.usage - p.job.request.demand(p.workers) + p.job.request.demand(workers)
        p.workers, p.version = workers, p.version + 1
        if workers:
            self.push(self.clock.now + p.remaining / workers, _FINISH, p.job.request.job_id, p.version)

    def apply(self, decision: Decision) -> None:
        p, outcome = self.jobs[decision.job_id], self.outcomes[decision.job_id]
        if isinstance(decision, Start):
            outcome.waited_s += self.clock.now - p.since
            p.since = self.clock.now
            self.set_workers(p, decision.workers)
        elif isinstance(decision, ScaleUp):
            self.set_workers(p, decision.workers)
        elif isinstance(decision, Preempt):
            self.set_workers(p, 0)
            outcome.preemptions += 1

    def handle(self, kind: int, job_id: str, version: int) -> None:
        if kind == _ARRIVE:
            self.jobs[job_id].since = self.clock.now
            self.scheduler.submit(self.jobs[job_id].job.request)
            return
        p = self.jobs[job_id]
        if version != p.version:
            return
        self.set_workers(p, 0)
        self.scheduler.finish(job_id)
        self.outcomes[job_id].finished_s = self.clock.now


_FINISH, _ARRIVE = 0, 1  # at one instant, completions free resources before arrivals are queued


def simulate(
    make_scheduler: Callable[[Callable[[], float]], Scheduler],
    clusters: Sequence[Cluster],
    jobs: Iterable[SimJob],
) -> SimulationReport:
    """Run every job through a scheduler built by ``make_scheduler(clock)``; returns per-job outcomes and totals."""
    clock = SimClock()
    capacity = Resources()
    for cluster in clusters:
        capacity = capacity + cluster.capacity
    sim = _Simulation(make_scheduler(clock), clock)
    for job in jobs:
        request = job.request
        sim.jobs[request.job_id] = _Progress(job, job.duration_s * request.max_workers)
        sim.outcomes[request.job_id] = JobOutcome(request.tier, job.arrival_s)
        sim.push(job.arrival_s, _ARRIVE, request.job_id)
    start = min((o.arrival_s for o in sim.outcomes.values()), default=0.0)
    sim.last_t = clock.now = start
    while sim.events:
        now = sim.events[0][0]
        sim.advance(now)
        while sim.events and sim.events[0][0] == now:
            _, kind, _, job_id, version = heapq.heappop(sim.events)
            sim.handle(kind, job_id, version)
        for decision in sim.scheduler.schedule():
            sim.apply(decision)
    makespan = sim.last_t - start
    utilisation = {
        dim: float(used / (cap * makespan)) if cap and makespan else 0.0
        for dim, used, cap in zip(("cpu", "gpu", "memory_gb"), sim.integral, capacity.as_tuple(), strict=True)
    }
    total_preemptions = sum(o.preemptions for o in sim.outcomes.values())
    return SimulationReport(sim.outcomes, makespan, utilisation, total_preemptions)
