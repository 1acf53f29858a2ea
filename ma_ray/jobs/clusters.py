"""The cluster registry and cluster selection by the seed's criteria: capacity, data locality, priority and cost.

A cluster is a Ray cluster reachable at its job-submission address, made of nodes with a capacity each, living in
a location (for data locality) and billed as spot or on-demand. Tiers 3-4 prefer spot clusters, tiers 1-2
on-demand ones; preference orders the candidates, it never forbids a cluster. Priority enters through headroom:
tiers 2-4 may not use the last ``headroom`` fraction of a cluster, which is kept for tier-1 bursts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from ma_ray.jobs.resources import ZERO, Resources


class CostClass(StrEnum):
    SPOT = "spot"
    ON_DEMAND = "on_demand"


def preferred_cost_class(tier: int) -> CostClass:
    """Tiers 3-4 run on spot capacity; tiers 1-2 on on-demand capacity."""
    return CostClass.SPOT if tier >= 3 else CostClass.ON_DEMAND


@dataclass(frozen=True)
class Node:
    name: str
    capacity: Resources


@dataclass(frozen=True)
class Cluster:
    """One Ray cluster: ``address`` is its job-submission address (e.g. ``http://head:8265``)."""

    name: str
    address: str
    location: str
    cost_class: CostClass
    nodes: tuple[Node, ...]
    python: str | None = None  # the interpreter its jobs run with; None: see ma_ray.jobs.entrypoint.job_python

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError(f"cluster {self.name!r} has no nodes")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"cluster {self.name!r} has duplicate node names")

    @property
    def capacity(self) -> Resources:
        total = ZERO
        for node in self.nodes:
            total = total + node.capacity
        return total

    def usable(self, tier: int, headroom: float) -> Resources:
        """What a job of ``tier`` may use in total: everything for tier 1, all but the headroom otherwise."""
        return self.capacity if tier == 1 else self.capacity * (1.0 - headroom)


class ClusterRegistry:
    """Clusters by name, in registration order (which breaks ties in selection)."""

    def __init__(self, clusters: Iterable[Cluster] = ()) -> None:
        self._clusters: dict[str, Cluster] = {}
        for cluster in clusters:
            self.register(cluster)

    def register(self, cluster: Cluster) -> None:
        if cluster.name in self._clusters:
            raise ValueError(f"cluster {cluster.name!r} is already registered")
        self._clusters[cluster.name] = cluster

    def get(self, name: str) -> Cluster:
        try:
            return self._clusters[name]
        except KeyError:
            raise KeyError(f"unknown cluster {name!r}; registered: {', '.join(self._clusters) or 'none'}") from None

    def __iter__(self) -> Iterator[Cluster]:
        return iter(self._clusters.values())

    def __len__(self) -> int:
        return len(self._clusters)

    @property
    def capacity(self) -> Resources:
        total = ZERO
        for cluster in self:
            total = total + cluster.capacity
        return total

    def rank(self, tier: int, data_location: str | None = None) -> list[Cluster]:
        """Clusters in preference order: near the data first, then the tier's cost class, then registration order."""
        preferred = preferred_cost_class(tier)
        order = {name: i for i, name in enumerate(self._clusters)}
        return sorted(
            self,
            key=lambda c: (
                data_location is not None and c.location != data_location,
                c.cost_class != preferred,
                order[c.name],
            ),
        )

    def select(
        self,
        demand: Resources,
        tier: int,
        used: Mapping[str, Resources],
        data_location: str | None = None,
        headroom: float = 0.0,
    ) -> Cluster | None:
        """The most preferred cluster whose remaining capacity for ``tier`` covers ``demand``, or None.

        ``used`` maps cluster names to what is already allocated there (absent means nothing). This checks
        cluster totals; node-level packing is the scheduler's job.
        """
        for cluster in self.rank(tier, data_location):
            room = cluster.usable(tier, headroom).saturating_sub(used.get(cluster.name, ZERO))
            if demand.fits_in(room):
                return cluster
        return None
