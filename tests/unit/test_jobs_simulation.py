import pytest

from ma_ray.jobs.baseline import FifoScheduler
from ma_ray.jobs.clusters import Cluster, CostClass, Node
from ma_ray.jobs.resources import Resources
from ma_ray.jobs.scheduler import ImpossibleJobError, JobRequest, TieredScheduler
from ma_ray.jobs.simulation import SimJob, simulate

FLEET = [Cluster("c", "http://c:8265", "east", CostClass.ON_DEMAND, (Node("n", Resources(4, 0, 64)),))]
CPU = Resources(cpu=1)


def tiered(clock):
    return TieredScheduler(FLEET, headroom=0.0, clock=clock)


def test_a_lone_job_runs_its_duration_without_waiting() -> None:
    report = simulate(tiered, FLEET, [SimJob(JobRequest("a", 2, CPU, 4), 10.0, 100.0)])
    outcome = report.outcomes["a"]
    assert (outcome.waited_s, outcome.finished_s) == (0.0, 110.0)
    assert report.makespan_s == 100.0 and report.utilisation["cpu"] == pytest.approx(1.0)


def test_a_preempted_job_keeps_its_progress_and_counts_its_second_wait() -> None:
    jobs = [SimJob(JobRequest("low", 3, CPU, 4), 0.0, 100.0), SimJob(JobRequest("urgent", 1, CPU, 4), 50.0, 30.0)]
    report = simulate(tiered, FLEET, jobs)
    low = report.outcomes["low"]
    assert (low.preemptions, low.waited_s, low.finished_s) == (1, 30.0, 130.0)
    assert report.preemptions == 1 and report.outcomes["urgent"].finished_s == 80.0
    assert report.unfinished() == []


def test_an_elastic_job_on_fewer_workers_runs_longer_then_speeds_up() -> None:
    jobs = [
        SimJob(JobRequest("gang", 2, CPU, 2), 0.0, 50.0),
        SimJob(JobRequest("elastic", 2, CPU, 4, min_workers=1), 0.0, 100.0),
    ]
    report = simulate(tiered, FLEET, jobs)
    # 400 worker-seconds: 2 workers for 50 s (100), then 4 workers for the remaining 300 (75 s).
    assert report.outcomes["elastic"].finished_s == 125.0


def test_fifo_baseline_blocks_behind_its_head_and_tiered_lets_tier_one_through() -> None:
    jobs = [
        SimJob(JobRequest("running", 4, CPU, 3), 0.0, 100.0),
        SimJob(JobRequest("wide", 4, CPU, 4), 1.0, 10.0),
        SimJob(JobRequest("urgent", 1, CPU, 1), 2.0, 10.0),
    ]
    fifo = simulate(lambda clock: FifoScheduler(FLEET), FLEET, jobs)
    assert fifo.outcomes["urgent"].waited_s == 98.0 + 10.0  # behind "wide", which waits for "running"
    assert simulate(tiered, FLEET, jobs).outcomes["urgent"].waited_s == 0.0
    assert fifo.wait_percentile(1, 95) == 108.0 and fifo.wait_percentile(2, 95) == 0.0


def test_fifo_baseline_refuses_impossible_jobs() -> None:
    with pytest.raises(ImpossibleJobError):
        FifoScheduler(FLEET).submit(JobRequest("huge", 1, CPU, 5))
