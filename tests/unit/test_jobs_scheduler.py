from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ma_ray.jobs.clusters import Cluster, CostClass, Node
from ma_ray.jobs.resources import Resources
from ma_ray.jobs.scheduler import ImpossibleJobError, JobRequest, Preempt, ScaleUp, Start, TieredScheduler

CPU = Resources(cpu=1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cluster(*node_cpus: float, name: str = "c", gpus: float = 0, memory: float = 1000) -> Cluster:
    nodes = tuple(Node(f"{name}-n{i}", Resources(cpu, gpus, memory)) for i, cpu in enumerate(node_cpus))
    return Cluster(name, f"http://{name}:8265", "east", CostClass.ON_DEMAND, nodes)


def job(job_id: str, tier: int = 2, cpu: float = 1, workers: int = 1, min_workers: int | None = None) -> JobRequest:
    return JobRequest(job_id, tier, Resources(cpu=cpu), workers, min_workers)


def started(decisions: list) -> list[str]:
    return [d.job_id for d in decisions if isinstance(d, Start)]


def test_weights_are_honoured_in_the_long_run_and_no_tier_starves() -> None:
    scheduler = TieredScheduler([cluster(1)], headroom=0.0, preemption=False)
    for tier in (1, 2, 3, 4):
        for i in range(1000):
            scheduler.submit(job(f"t{tier}-{i}", tier))
    counts: Counter[int] = Counter()
    for _ in range(1000):
        (one,) = started(scheduler.schedule())
        counts[int(one[1])] += 1
        scheduler.finish(one)
    assert {t: round(counts[t] / 10) for t in counts} == {1: 50, 2: 30, 3: 15, 4: 5}


def test_an_idle_tier_does_not_bank_credit() -> None:
    scheduler = TieredScheduler([cluster(1)], headroom=0.0, preemption=False)
    for i in range(50):
        scheduler.submit(job(f"a{i}", 4))
        scheduler.finish(*started(scheduler.schedule()))
    for i in range(10):
        scheduler.submit(job(f"t1-{i}", 1))
        scheduler.submit(job(f"t4-{i}", 4))
    order = []
    for _ in range(10):
        (one,) = started(scheduler.schedule())
        order.append(one)
        scheduler.finish(one)
    assert sum(o.startswith("t1") for o in order) >= 8  # tier 4's 50 solo runs earned it no catch-up burst


def test_first_fit_decreasing_packs_what_arrival_order_would_not() -> None:
    scheduler = TieredScheduler([cluster(4, 4)], headroom=0.0)
    for job_id, cpu in [("small-a", 1), ("small-b", 1), ("big-a", 3), ("big-b", 3)]:
        scheduler.submit(job(job_id, cpu=cpu))
    decisions = scheduler.schedule()
    assert sorted(started(decisions)) == ["big-a", "big-b", "small-a", "small-b"]
    assert started(decisions)[:2] == ["big-a", "big-b"]


def test_cpu_gpu_and_memory_are_packed_together() -> None:
    cpu_only = Cluster("cpu", "http://cpu:8265", "east", CostClass.ON_DEMAND, (Node("n", Resources(64, 0, 512)),))
    gpu = Cluster("gpu", "http://gpu:8265", "east", CostClass.ON_DEMAND, (Node("n", Resources(8, 2, 64)),))
    scheduler = TieredScheduler([cpu_only, gpu], headroom=0.0)
    scheduler.submit(JobRequest("torch", 2, Resources(2, 1, 16), max_workers=2))
    scheduler.submit(JobRequest("fat", 2, Resources(1, 0, 100), max_workers=1))
    decisions = {d.job_id: d for d in scheduler.schedule()}
    assert decisions["torch"].cluster == "gpu" and decisions["torch"].workers == 2
    assert decisions["fat"].cluster == "cpu"  # 100 GiB does not fit the GPU node's 64 GiB


def test_lower_tiers_leave_the_headroom_for_tier_one() -> None:
    scheduler = TieredScheduler([cluster(10)], headroom=0.2)
    for i in range(10):
        scheduler.submit(job(f"t3-{i}", 3))
    assert len(started(scheduler.schedule())) == 8
    scheduler.submit(job("burst", 1, cpu=2))
    decisions = scheduler.schedule()
    assert started(decisions) == ["burst"]
    assert not [d for d in decisions if isinstance(d, Preempt)]


def test_tier_one_preempts_lowest_tier_then_youngest_and_the_victims_requeue() -> None:
    clock = Clock()
    scheduler = TieredScheduler([cluster(4)], headroom=0.0, clock=clock)
    for t, (job_id, tier) in enumerate([("t2", 2), ("t4", 4), ("t3-old", 3), ("t3-young", 3)]):
        clock.now = float(t)
        scheduler.submit(job(job_id, tier))
        assert started(scheduler.schedule()) == [job_id]
    clock.now = 10.0
    scheduler.submit(job("urgent", 1, cpu=2))
    decisions = scheduler.schedule()
    preempted = [d for d in decisions if isinstance(d, Preempt)]
    assert [p.job_id for p in preempted] == ["t4", "t3-young"]
    assert all(p.action == "checkpoint_then_requeue" and p.by == "urgent" for p in preempted)
    assert started(decisions) == ["urgent"]
    assert scheduler.queued() == ["t3-young", "t4"]
    assert set(scheduler.running()) == {"t2", "t3-old", "urgent"}


def test_a_requeued_job_keeps_its_place_ahead_of_later_arrivals() -> None:
    scheduler = TieredScheduler([cluster(1)], headroom=0.0)
    scheduler.submit(job("first", 3))
    scheduler.schedule()
    scheduler.submit(job("later", 3))
    scheduler.submit(job("urgent", 1))
    assert started(scheduler.schedule()) == ["urgent"]
    assert scheduler.queued(3) == ["first", "later"]
    scheduler.finish("urgent")
    assert started(scheduler.schedule()) == ["first"]


def test_only_tier_one_preempts() -> None:
    scheduler = TieredScheduler([cluster(2)], headroom=0.0)
    scheduler.submit(job("low", 4, workers=2))
    scheduler.schedule()
    scheduler.submit(job("tier2", 2))
    assert scheduler.schedule() == []


def test_preemption_can_be_switched_off() -> None:
    scheduler = TieredScheduler([cluster(1)], headroom=0.0, preemption=False)
    scheduler.submit(job("low", 4))
    scheduler.schedule()
    scheduler.submit(job("urgent", 1))
    assert scheduler.schedule() == []


def test_elastic_jobs_start_partial_and_scale_up_later() -> None:
    scheduler = TieredScheduler([cluster(4)], headroom=0.0)
    scheduler.submit(job("gang", 2, workers=2))
    scheduler.schedule()
    scheduler.submit(job("elastic", 2, workers=4, min_workers=1))
    (start,) = scheduler.schedule()
    assert isinstance(start, Start) and start.workers == 2
    scheduler.finish("gang")
    (grow,) = scheduler.schedule()
    assert isinstance(grow, ScaleUp) and grow.workers == 4 and sum(p.workers for p in grow.added) == 2
    assert scheduler.running() == {"elastic": 4}
    restart = scheduler.allocation("elastic")  # what the caller relaunches the grown job with, still running
    assert (restart.cluster, restart.workers, sum(p.workers for p in restart.placements)) == ("c", 4, 4)
    assert scheduler.schedule() == [] and scheduler.used("c") == Resources(cpu=4)
    with pytest.raises(KeyError, match="not running"):
        scheduler.allocation("gang")


def test_scale_up_waits_while_a_same_or_higher_tier_job_is_queued() -> None:
    scheduler = TieredScheduler([cluster(4)], headroom=0.0, preemption=False)
    scheduler.submit(job("elastic", 3, workers=4, min_workers=1))
    scheduler.submit(job("blocker", 4, workers=1))
    scheduler.submit(job("big", 2, cpu=3))
    scheduler.schedule()
    assert scheduler.running() == {"big": 1, "elastic": 1}
    scheduler.finish("big")
    decisions = scheduler.schedule()
    assert started(decisions) == ["blocker"]
    assert [d.workers for d in decisions if isinstance(d, ScaleUp)] == [3]


def test_gang_jobs_start_with_all_workers_or_not_at_all() -> None:
    scheduler = TieredScheduler([cluster(4)], headroom=0.0)
    scheduler.submit(job("other", 2))
    scheduler.schedule()
    scheduler.submit(job("gang", 2, workers=4))
    assert scheduler.schedule() == []
    assert scheduler.queued() == ["gang"]


def test_impossible_jobs_are_refused_at_submit() -> None:
    scheduler = TieredScheduler([cluster(4, 4)], headroom=0.25)
    with pytest.raises(ImpossibleJobError, match="needs 1 x"):
        scheduler.submit(job("huge", 2, cpu=5))  # no node holds a 5-CPU worker
    with pytest.raises(ImpossibleJobError, match="outside the tier-1 headroom"):
        scheduler.submit(job("wide", 2, workers=8))  # 8 CPUs exist, but tier 2 may use 6
    scheduler.submit(job("wide-t1", 1, workers=8))
    with pytest.raises(ValueError, match="already submitted"):
        scheduler.submit(job("wide-t1", 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"tier": 5}, "tier"), ({"worker": Resources()}, "some CPU"), ({"min_workers": 3}, "min_workers")],
)
def test_job_requests_are_validated(kwargs: dict, message: str) -> None:
    fields = {"job_id": "j", "tier": 2, "worker": CPU, "max_workers": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        JobRequest(**fields)


node_cpus = st.lists(st.integers(1, 16), min_size=1, max_size=4)
job_shapes = st.lists(
    st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 4), st.integers(1, 4), st.booleans()),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(clusters=st.lists(node_cpus, min_size=1, max_size=3), shapes=job_shapes, finish_every=st.integers(1, 5))
def test_packing_never_over_commits_any_node(
    clusters: list[list[int]], shapes: list[tuple[int, int, int, int, bool]], finish_every: int
) -> None:
    fleet = [cluster(*cpus, name=f"c{i}", gpus=2, memory=64) for i, cpus in enumerate(clusters)]
    capacity = {(c.name, n.name): n.capacity for c in fleet for n in c.nodes}
    used = dict.fromkeys(capacity, Resources())
    scheduler = TieredScheduler(fleet, headroom=0.1)
    shape_of: dict[str, Resources] = {}
    placed: dict[str, list] = {}
    for i, (tier, cpu, gpu_pct, workers, elastic) in enumerate(shapes):
        request = JobRequest(f"j{i}", tier, Resources(cpu, gpu_pct / 4, cpu * 4), workers, 1 if elastic else None)
        try:
            scheduler.submit(request)
        except ImpossibleJobError:
            continue
        shape_of[request.job_id] = request.worker
        for d in scheduler.schedule():
            if isinstance(d, Preempt):
                for p in placed.pop(d.job_id):
                    used[(p.cluster, p.node)] -= shape_of[d.job_id] * p.workers
                continue
            additions = d.placements if isinstance(d, Start) else d.added
            placed.setdefault(d.job_id, []).extend(additions)
            for p in additions:
                used[(p.cluster, p.node)] += shape_of[d.job_id] * p.workers
        assert all(used[k].fits_in(capacity[k]) for k in capacity)
        if i % finish_every == 0 and placed:
            done = sorted(placed)[0]
            scheduler.finish(done)
            for p in placed.pop(done):
                used[(p.cluster, p.node)] -= shape_of[done] * p.workers
