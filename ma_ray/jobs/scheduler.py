"""The tiered training-job scheduler: weighted fair share across tier queues, FFD packing, headroom, preemption.

Pure and deterministic: no I/O, no threads, time comes from an injected clock. The caller submits jobs, calls
``schedule()`` whenever something changed (a job arrived or finished) and carries out the decisions it returns:

- ``Start``: launch the job with ``workers`` workers on the listed nodes of one cluster.
- ``ScaleUp``: an elastic job gets more workers (the listed placements are the additions, counted as the job's
  from now on); the caller restarts it with them (``allocation`` gives its whole allocation) or lets it run on.
- ``Preempt``: checkpoint the job, then stop it; the scheduler has already put it back in its tier's queue, at
  its original place, so it resumes from its checkpoint (keeping its progress) when it is started again. The
  caller may ``hold`` it there until its attempt has ended, then ``unhold`` it.

Rules:

1. One queue per tier (FIFO inside a tier). Dispatch decisions follow stride scheduling with the tier weights
   (default 50/30/15/5 %), so in the long run each backlogged tier gets its share and none starves.
2. The jobs picked in one round are packed first-fit decreasing (largest dominant share first) over CPU, GPU and
   memory together, each at its minimum worker count; clusters are tried in the registry's preference order,
   nodes first-fit.
3. Tiers 2-4 may not use the last ``headroom`` fraction of any cluster: it is kept for tier-1 bursts.
4. Only a tier-1 job may preempt, and only jobs of tiers 2-4: lowest tier first, youngest first, just enough.
5. Elastic jobs (``min_workers < max_workers``) are placed with ``min_workers`` and grow toward ``max_workers``
   (in the same round or later) while no job of the same or a higher tier is waiting; other jobs are
   gang-scheduled (all workers or none).
6. A job that could not fit even on an empty cluster is refused at ``submit`` with ``ImpossibleJobError``.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ma_ray.jobs.clusters import Cluster, ClusterRegistry
from ma_ray.jobs.packing import Placement, Pool, total_workers
from ma_ray.jobs.resources import Resources

TIER_WEIGHTS: Mapping[int, float] = {1: 0.50, 2: 0.30, 3: 0.15, 4: 0.05}
PREEMPT_ACTION = "checkpoint_then_requeue"


class ImpossibleJobError(ValueError):
    """The job cannot run on any registered cluster, even an empty one."""


@dataclass(frozen=True)
class JobRequest:
    """What the scheduler needs to know about a job.

    ``worker`` is the shape of one worker; the job wants ``max_workers`` of them. ``min_workers`` set below
    ``max_workers`` makes the job elastic; left at None the job is a gang of ``max_workers``.
    """

    job_id: str
    tier: int
    worker: Resources
    max_workers: int = 1
    min_workers: int | None = None
    data_location: str | None = None

    def __post_init__(self) -> None:
        if self.tier not in TIER_WEIGHTS:
            raise ValueError(f"job {self.job_id!r}: tier must be 1-4, got {self.tier}")
        if self.worker.is_zero():
            raise ValueError(f"job {self.job_id!r}: a worker must ask for some CPU, GPU or memory")
        if self.max_workers < 1 or not 1 <= self.floor <= self.max_workers:
            raise ValueError(f"job {self.job_id!r}: need 1 <= min_workers <= max_workers")

    @property
    def floor(self) -> int:
        """The fewest workers the job can start with."""
        return self.max_workers if self.min_workers is None else self.min_workers

    @property
    def elastic(self) -> bool:
        return self.floor < self.max_workers

    def demand(self, workers: int) -> Resources:
        return self.worker * workers


@dataclass(frozen=True)
class Start:
    job_id: str
    cluster: str
    placements: tuple[Placement, ...]
    workers: int


@dataclass(frozen=True)
class ScaleUp:
    job_id: str
    added: tuple[Placement, ...]
    workers: int


@dataclass(frozen=True)
class Preempt:
    job_id: str
    cluster: str
    by: str
    action: str = PREEMPT_ACTION


Decision = Start | ScaleUp | Preempt


@dataclass(order=True)
class _Queued:
    seq: int
    request: JobRequest = field(compare=False)
    submitted_at: float = field(compare=False)


@dataclass
class _Running:
    queued: _Queued
    cluster: str
    placements: list[Placement]
    started_at: float

    @property
    def workers(self) -> int:
        return total_workers(self.placements)


class TieredScheduler:
    """See the module docstring for the rules. Not thread-safe; one owner drives it."""

    def __init__(
        self,
        clusters: ClusterRegistry | Iterable[Cluster],
        *,
        weights: Mapping[int, float] = TIER_WEIGHTS,
        headroom: float = 0.10,
        preemption: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = clusters if isinstance(clusters, ClusterRegistry) else ClusterRegistry(clusters)
        if set(weights) != set(TIER_WEIGHTS) or min(weights.values()) <= 0:
            raise ValueError(f"weights must give a positive weight to each of tiers {sorted(TIER_WEIGHTS)}")
        self._stride = {tier: 1.0 / w for tier, w in weights.items()}
        self._pass = dict.fromkeys(weights, 0.0)
        self._preemption = preemption
        self._clock = clock
        self._pool = Pool(self._registry, headroom)
        self._empty = Pool(self._registry, headroom)
        self._total = self._registry.capacity
        self._queues: dict[int, list[_Queued]] = {tier: [] for tier in weights}
        self._running: dict[str, _Running] = {}
        self._known: set[str] = set()
        self._held: set[str] = set()
        self._seq = 0

    # -- the caller's side ---------------------------------------------------------------------------------

    def submit(self, job: JobRequest) -> None:
        """Queue a job; raises ``ImpossibleJobError`` if no cluster could ever hold its minimum shape."""
        if job.job_id in self._known:
            raise ValueError(f"job {job.job_id!r} was already submitted")
        if not any(
            total_workers(self._empty.fit(c.name, job.worker, job.tier, job.floor)) >= job.floor for c in self._registry
        ):
            raise ImpossibleJobError(
                f"job {job.job_id!r} (tier {job.tier}) needs {job.floor} x {job.worker}, more than any cluster "
                f"can hold{'' if job.tier == 1 else ' outside the tier-1 headroom'}"
            )
        self._known.add(job.job_id)
        self._seq += 1
        self._enqueue(_Queued(self._seq, job, self._clock()))

    def finish(self, job_id: str) -> None:
        """A running job ended (done, failed or cancelled): free its resources."""
        running = self._running.pop(job_id, None)
        if running is None:
            raise KeyError(f"job {job_id!r} is not running")
        self._pool.release(running.placements, running.queued.request.worker)
        self._known.discard(job_id)

    def cancel(self, job_id: str) -> None:
        """Drop a queued job."""
        for queue in self._queues.values():
            for i, entry in enumerate(queue):
                if entry.request.job_id == job_id:
                    del queue[i]
                    self._known.discard(job_id)
                    self._held.discard(job_id)
                    return
        raise KeyError(f"job {job_id!r} is not queued")

    def hold(self, job_id: str) -> None:
        """Keep a queued job, at its place, from starting until `unhold` (a preempted job still checkpointing)."""
        if job_id not in self.queued():
            raise KeyError(f"job {job_id!r} is not queued")
        self._held.add(job_id)

    def unhold(self, job_id: str) -> None:
        """Let a held job start again, from the place it kept."""
        self._held.discard(job_id)

    def schedule(self) -> list[Decision]:
        """One scheduling round: fair-share dispatch, then tier-1 preemption, then elastic scale-up."""
        decisions: list[Decision] = list(self._dispatch())
        if self._preemption:
            decisions += self._preempt_for_tier1()
        return _fold_scale_ups(decisions, self._scale_up())

    def queued(self, tier: int | None = None) -> list[str]:
        tiers = sorted(self._queues) if tier is None else [tier]
        return [e.request.job_id for t in tiers for e in self._queues[t]]

    def running(self) -> dict[str, int]:
        """Running job ids and their current worker counts."""
        return {job_id: r.workers for job_id, r in self._running.items()}

    def allocation(self, job_id: str) -> Start:
        """A running job's whole allocation as a `Start`: what restarting it with every worker it holds (after a
        ``ScaleUp``) launches, without submitting it again."""
        running = self._running.get(job_id)
        if running is None:
            raise KeyError(f"job {job_id!r} is not running")
        return Start(job_id, running.cluster, tuple(running.placements), running.workers)

    def used(self, cluster: str) -> Resources:
        return self._pool.used(cluster)

    # -- dispatch -------------------------------------------------------------------------------------------

    def _enqueue(self, entry: _Queued) -> None:
        queue = self._queues[entry.request.tier]
        if not queue:  # a tier coming back from idle does not bank credit for the time it had nothing queued
            active = [self._pass[t] for t, q in self._queues.items() if q]
            self._pass[entry.request.tier] = max(self._pass[entry.request.tier], min(active, default=0.0))
        bisect.insort(queue, entry)

    def _budget(self, tier: int) -> Resources:
        budget = Resources()
        for cluster in self._registry:
            budget = budget + cluster.usable(tier, self._pool.headroom).saturating_sub(self._pool.used(cluster.name))
        return budget

    def _fair_share_batch(self) -> list[_Queued]:
        """Queue heads in stride order until the next head no longer fits what is left (that tier then waits)."""
        passes, heads, claimed, blocked = dict(self._pass), dict.fromkeys(self._queues, 0), Resources(), set()
        batch: list[_Queued] = []
        while True:
            active = [t for t, q in self._queues.items() if heads[t] < len(q) and t not in blocked]
            if not active:
                return batch
            tier = min(active, key=lambda t: (passes[t], t))
            entry = self._queues[tier][heads[tier]]
            if entry.request.job_id in self._held:  # passed over, not blocking its tier
                heads[tier] += 1
                continue
            demand = entry.request.demand(entry.request.floor)
            if not (claimed + demand).fits_in(self._budget(tier)):
                blocked.add(tier)
                continue
            batch.append(entry)
            claimed = claimed + demand
            heads[tier] += 1
            passes[tier] += self._stride[tier]

    def _dispatch(self) -> list[Start]:
        batch = self._fair_share_batch()
        batch.sort(key=lambda e: (-e.request.demand(e.request.floor).share_of(self._total), e.seq))
        return [start for entry in batch if (start := self._try_start(entry)) is not None]

    def _try_start(self, entry: _Queued) -> Start | None:
        job = entry.request
        for cluster in self._registry.rank(job.tier, job.data_location):
            placements = self._pool.fit(cluster.name, job.worker, job.tier, job.floor)
            if total_workers(placements) == job.floor:
                return self._start(entry, cluster.name, placements)
        return None

    def _start(self, entry: _Queued, cluster: str, placements: list[Placement]) -> Start:
        job = entry.request
        self._pool.allocate(placements, job.worker)
        self._queues[job.tier].remove(entry)
        self._pass[job.tier] += self._stride[job.tier]
        self._running[job.job_id] = _Running(entry, cluster, placements, self._clock())
        return Start(job.job_id, cluster, tuple(placements), total_workers(placements))

    # -- preemption -----------------------------------------------------------------------------------------

    def _preempt_for_tier1(self) -> list[Decision]:
        decisions: list[Decision] = []
        for entry in list(self._queues[1]):
            decisions += self._make_room(entry)
        return decisions

    def _victims(self, cluster: str) -> list[_Running]:
        """Jobs a tier-1 job may preempt on ``cluster``: lowest tier first, then youngest first."""
        candidates = [r for r in self._running.values() if r.cluster == cluster and r.queued.request.tier > 1]
        return sorted(candidates, key=lambda r: (-r.queued.request.tier, -r.started_at, -r.queued.seq))

    def _make_room(self, entry: _Queued) -> list[Decision]:
        job = entry.request
        for cluster in self._registry.rank(job.tier, job.data_location):
            scratch, chosen = self._pool.copy(), []
            for victim in [None, *self._victims(cluster.name)]:
                if victim is not None:
                    scratch.release(victim.placements, victim.queued.request.worker)
                    chosen.append(victim)
                if total_workers(scratch.fit(cluster.name, job.worker, 1, job.floor)) == job.floor:
                    decisions: list[Decision] = [self._preempt(v, job.job_id) for v in chosen]
                    placements = self._pool.fit(cluster.name, job.worker, 1, job.floor)
                    return [*decisions, self._start(entry, cluster.name, placements)]
        return []

    def _preempt(self, victim: _Running, by: str) -> Preempt:
        job = victim.queued.request
        del self._running[job.job_id]
        self._pool.release(victim.placements, job.worker)
        self._enqueue(victim.queued)
        return Preempt(job.job_id, victim.cluster, by)

    # -- elastic scale-up -----------------------------------------------------------------------------------

    def _scale_up(self) -> list[ScaleUp]:
        waiting = [t for t, q in self._queues.items() if any(e.request.job_id not in self._held for e in q)]
        growing = sorted(
            (r for r in self._running.values() if r.workers < r.queued.request.max_workers),
            key=lambda r: (r.queued.request.tier, r.started_at, r.queued.seq),
        )
        decisions: list[ScaleUp] = []
        for running in growing:
            job = running.queued.request
            if any(t <= job.tier for t in waiting):
                continue
            added = self._pool.fit(running.cluster, job.worker, job.tier, job.max_workers - running.workers)
            if added:
                self._pool.allocate(added, job.worker)
                running.placements = _merge(running.placements, added)
                decisions.append(ScaleUp(job.job_id, tuple(added), running.workers))
        return decisions


def _fold_scale_ups(decisions: list[Decision], scale_ups: list[ScaleUp]) -> list[Decision]:
    """A job started and grown in the same round is reported as one ``Start`` with all its workers."""
    index = {d.job_id: i for i, d in enumerate(decisions) if isinstance(d, Start)}
    folded = list(decisions)
    for grow in scale_ups:
        if grow.job_id in index:
            start = folded[index[grow.job_id]]
            assert isinstance(start, Start)
            placements = tuple(_merge(list(start.placements), list(grow.added)))
            folded[index[grow.job_id]] = Start(start.job_id, start.cluster, placements, grow.workers)
        else:
            folded.append(grow)
    return folded


def _merge(placements: list[Placement], added: list[Placement]) -> list[Placement]:
    counts: dict[tuple[str, str], int] = {}
    for p in [*placements, *added]:
        counts[(p.cluster, p.node)] = counts.get((p.cluster, p.node), 0) + p.workers
    return [Placement(cluster, node, n) for (cluster, node), n in counts.items()]
