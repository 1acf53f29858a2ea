"""Free capacity per node of every cluster, and first-fit placement of identical workers onto those nodes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ma_ray.jobs.clusters import Cluster
from ma_ray.jobs.resources import ZERO, Resources


@dataclass(frozen=True)
class Placement:
    """``workers`` copies of a job's worker shape on one node."""

    cluster: str
    node: str
    workers: int


class Pool:
    """What is free on each node, and what each cluster has handed out (for the tier-1 headroom rule).

    ``fit`` only plans; ``allocate`` and ``release`` change the pool. ``copy`` gives a scratch pool for what-if
    planning (preemption).
    """

    def __init__(self, clusters: Iterable[Cluster], headroom: float) -> None:
        if not 0.0 <= headroom < 1.0:
            raise ValueError(f"headroom must be in [0, 1), got {headroom}")
        self.headroom = headroom
        self._clusters = {c.name: c for c in clusters}
        self._free = {(c.name, n.name): n.capacity for c in self._clusters.values() for n in c.nodes}
        self._used = dict.fromkeys(self._clusters, ZERO)

    def copy(self) -> Pool:
        clone = Pool((), self.headroom)
        clone._clusters, clone._free, clone._used = self._clusters, dict(self._free), dict(self._used)
        return clone

    def used(self, cluster: str) -> Resources:
        return self._used[cluster]

    def fit(self, cluster: str, worker: Resources, tier: int, max_workers: int) -> list[Placement]:
        """Plan up to ``max_workers`` workers on ``cluster``, first-fit over its nodes, within the tier's budget."""
        spec = self._clusters[cluster]
        budget = spec.usable(tier, self.headroom).saturating_sub(self._used[cluster])
        room = min(max_workers, worker.count_in(budget))
        placements: list[Placement] = []
        for node in spec.nodes:
            if room == 0:
                break
            count = min(room, worker.count_in(self._free[(cluster, node.name)]))
            if count:
                placements.append(Placement(cluster, node.name, count))
                room -= count
        return placements

    def allocate(self, placements: Iterable[Placement], worker: Resources) -> None:
        for p in placements:
            self._free[(p.cluster, p.node)] = self._free[(p.cluster, p.node)] - worker * p.workers
            self._used[p.cluster] = self._used[p.cluster] + worker * p.workers

    def release(self, placements: Iterable[Placement], worker: Resources) -> None:
        for p in placements:
            self._free[(p.cluster, p.node)] = self._free[(p.cluster, p.node)] + worker * p.workers
            self._used[p.cluster] = self._used[p.cluster] - worker * p.workers


def total_workers(placements: Iterable[Placement]) -> int:
    return sum(p.workers for p in placements)
