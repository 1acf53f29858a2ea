"""The tiered scheduler against a FIFO first-fit baseline, both driven by the same simulated workload.

Figures (issue 7): 1,000 seeded jobs of mixed tiers and shapes (CPU-only XGBoost gangs, elastic GPU PyTorch jobs,
large DeepSpeed gangs) arriving over time onto 3 clusters (two on-demand, one spot, in two locations). Reported
for both schedulers: utilisation (CPU, GPU, memory), p95 queue wait per tier, preemptions, unfinished jobs.
Targets: tier-1 p95 wait below the baseline's; every job of every tier finishes (no starvation).
Run alone: `python bench/scheduler_simulation.py [--jobs 1000] [--seed 7] [--load 0.9]`.
"""

from __future__ import annotations

import argparse

import numpy as np
from _harness import Result, Target, report

from ma_ray.jobs import (
    Cluster,
    CostClass,
    FifoScheduler,
    JobRequest,
    Node,
    Resources,
    SimJob,
    SimulationReport,
    TieredScheduler,
    simulate,
)

TIERS, TIER_MIX = [1, 2, 3, 4], [0.15, 0.30, 0.30, 0.25]
LOCATIONS = ["us-east", "us-west"]


def clusters() -> list[Cluster]:
    def nodes(prefix: str, count: int, shape: Resources) -> tuple[Node, ...]:
        return tuple(Node(f"{prefix}-{i}", shape) for i in range(count))

    gpu_node, cpu_node = Resources(32, 4, 256), Resources(16, 0, 64)
    return [
        Cluster("east-od", "http://east-od:8265", "us-east", CostClass.ON_DEMAND, nodes("eo", 8, gpu_node)),
        Cluster("west-od", "http://west-od:8265", "us-west", CostClass.ON_DEMAND, nodes("wo", 6, gpu_node)),
        Cluster(
            "east-spot",
            "http://east-spot:8265",
            "us-east",
            CostClass.SPOT,
            nodes("es-g", 4, gpu_node) + nodes("es-c", 8, cpu_node),
        ),
    ]


def workload(n: int, seed: int, load: float, capacity: Resources) -> list[SimJob]:
    """Seeded jobs; Poisson arrivals at the rate that offers ``load`` times the capacity of the busiest resource."""
    rng = np.random.default_rng(seed)
    jobs: list[tuple[JobRequest, float]] = []
    for i in range(n):
        tier = int(rng.choice(TIERS, p=TIER_MIX))
        kind = rng.choice(["xgboost", "torch", "deepspeed"], p=[0.5, 0.35, 0.15])
        location = str(rng.choice(LOCATIONS))
        duration = float(np.clip(rng.lognormal(np.log(3600), 0.8), 300, 6 * 3600))
        if kind == "xgboost":
            request = JobRequest(f"j{i}", tier, Resources(4, 0, 16), int(rng.integers(2, 9)), data_location=location)
        elif kind == "torch":
            workers = int(rng.choice([2, 4, 8]))
            request = JobRequest(f"j{i}", tier, Resources(8, 1, 48), workers, workers // 2, location)
        else:
            request = JobRequest(f"j{i}", tier, Resources(16, 4, 200), int(rng.integers(1, 4)), data_location=location)
        jobs.append((request, duration))
    asked = sum((r.demand(r.max_workers) * d for r, d in jobs), Resources())
    busiest = max(a / c for a, c in zip(asked.as_tuple(), capacity.as_tuple(), strict=True))  # seconds of fleet
    mean_gap = busiest / load / n
    arrivals = np.cumsum(rng.exponential(mean_gap, n))
    return [SimJob(r, float(t), d) for (r, d), t in zip(jobs, arrivals, strict=True)]


def results(tiered: SimulationReport, fifo: SimulationReport) -> list[Result]:
    out: list[Result] = []
    for tier in TIERS:
        target = Target("ratio", "<", 1) if tier == 1 else None
        mine, base = tiered.wait_percentile(tier, 95) / 60, fifo.wait_percentile(tier, 95) / 60
        out.append(Result(f"tier-{tier} p95 queue wait (vs FIFO)", mine, "min", base, target=target))
    for dim in ("cpu", "gpu", "memory_gb"):
        out.append(
            Result(f"utilisation, {dim} (vs FIFO)", 100 * tiered.utilisation[dim], "%", 100 * fifo.utilisation[dim])
        )
    out += [
        Result("makespan (vs FIFO)", tiered.makespan_s / 3600, "h", fifo.makespan_s / 3600),
        Result("preemptions", tiered.preemptions, "jobs"),
        Result("jobs left unfinished, any tier", len(tiered.unfinished()), "jobs", target=Target("value", "<=", 0)),
        Result("FIFO baseline: jobs left unfinished", len(fifo.unfinished()), "jobs"),
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--load", type=float, default=0.9, help="offered load on the busiest resource (1 = full)")
    args = parser.parse_args()
    fleet = clusters()
    capacity = sum((c.capacity for c in fleet), Resources())
    jobs = workload(args.jobs, args.seed, args.load, capacity)
    tiered = simulate(lambda clock: TieredScheduler(fleet, clock=clock), fleet, jobs)
    fifo = simulate(lambda clock: FifoScheduler(fleet), fleet, jobs)
    report("scheduler_simulation", results(tiered, fifo))


if __name__ == "__main__":
    main()
