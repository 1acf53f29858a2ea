"""A FIFO first-fit scheduler: the baseline the tiered scheduler is measured against.

One queue in arrival order, strict head-of-line (nothing overtakes a waiting job), every job a gang of
``max_workers``, clusters in registration order, nodes first-fit; no tiers, headroom, preemption or elasticity.
Same ``submit`` / ``schedule`` / ``finish`` protocol as ``TieredScheduler``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from ma_ray.jobs.clusters import Cluster
from ma_ray.jobs.packing import Placement, Pool, total_workers
from ma_ray.jobs.scheduler import Decision, ImpossibleJobError, JobRequest, Start


class FifoScheduler:
    def __init__(self, clusters: Iterable[Cluster]) -> None:
        self._clusters = list(clusters)
        self._pool = Pool(self._clusters, headroom=0.0)
        self._queue: deque[JobRequest] = deque()
        self._running: dict[str, tuple[JobRequest, list[Placement]]] = {}

    def submit(self, job: JobRequest) -> None:
        empty = Pool(self._clusters, headroom=0.0)
        if not any(
            total_workers(empty.fit(c.name, job.worker, 1, job.max_workers)) == job.max_workers for c in self._clusters
        ):
            raise ImpossibleJobError(f"job {job.job_id!r} needs more than any cluster can hold")
        self._queue.append(job)

    def finish(self, job_id: str) -> None:
        job, placements = self._running.pop(job_id)
        self._pool.release(placements, job.worker)

    def schedule(self) -> list[Decision]:
        decisions: list[Decision] = []
        while self._queue:
            start = self._try_start(self._queue[0])
            if start is None:
                break
            self._queue.popleft()
            decisions.append(start)
        return decisions

    def _try_start(self, job: JobRequest) -> Start | None:
        for cluster in self._clusters:
            placements = self._pool.fit(cluster.name, job.worker, 1, job.max_workers)
            if total_workers(placements) == job.max_workers:
                self._pool.allocate(placements, job.worker)
                self._running[job.job_id] = (job, placements)
                return Start(job.job_id, cluster.name, tuple(placements), job.max_workers)
        return None
