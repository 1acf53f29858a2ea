"""The demo's training stage through the job controller: the ETA model as a job spec, submitted to the demo's own
Ray through its job-submission API, trained with a checkpoint every 10 rounds, registered in Gallery with its
lineage (the deploy stage then makes it production). Needs the demo's Ray to run its dashboard (the job server
lives there)."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ray

from actors.job_controller import job_controller, running_controller, submit, wait
from apps.demo_models import MODEL, SIGNATURE, TRAINING_DAYS
from apps.demo_summary import StageFailed
from ma_ray.jobs import ClusterSpec, JobState, NodeSpec, TrainingJobSpec, parse_spec
from ma_ray.palette import registered_repository
from ma_ray.palette.pipelines import BatchPipeline
from ma_ray.text_table import format_table

if TYPE_CHECKING:
    from apps.demo import DemoContext

JOB_TIMEOUT_S = 1800


def local_cluster() -> ClusterSpec:
    """This Ray as the one cluster jobs may go to: its dashboard address and its whole capacity."""
    url = ray._private.worker.get_dashboard_url()  # the public route, ray.init()'s return value, is the caller's
    if not url:
        raise RuntimeError("this Ray runs without its dashboard, so it takes no jobs: start it with include_dashboard")
    total = ray.cluster_resources()
    node = NodeSpec(
        name="local", cpu=total.get("CPU", 1), gpu=total.get("GPU", 0), memory_gb=total.get("memory", 0) / 2**30
    )
    # This process started (or joined) the Ray its jobs run on: they run with this interpreter, not PATH's python.
    return ClusterSpec(name="local", address=f"http://{url}", location="local", nodes=(node,), python=sys.executable)


def eta_spec(ctx: DemoContext) -> TrainingJobSpec:
    """The ETA model of `apps.demo_models` as a job: the same features, transforms and Gallery metadata."""
    as_of = ctx.facts["as_of"]
    first = as_of - timedelta(days=TRAINING_DAYS)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    day = timedelta(days=1)  # labels after the first snapshot's day, through the end of as_of
    return parse_spec(
        {
            "name": MODEL,
            "framework": "xgboost",
            "tier": 1,
            "owner": "marketplace-ml",
            "description": "Trip duration in minutes from driver features and request time",
            "features": list(SIGNATURE.features),
            "transforms": dict(SIGNATURE.transforms),
            "label": {
                "uri": ctx.raw_uri,
                "table": "trips",
                "timestamp": "requested_at",
                "name": "minutes",
                "value": "@basis:duration_s / 60",
                "where": "@basis:status == 'completed'",
                "columns": {"driver_id": "driver_id", "request_ts": "requested_at", "distance_km": "distance_km"},
            },
            "data": {"start": f"{first + day}T00:00:00Z", "end": f"{as_of + day}T00:00:00Z"},
            "hyperparameters": {"max_depth": 6, "eta": 0.2, "num_boost_round": 60},
            "resources": {"workers": min(2, cpus), "cpus_per_worker": 1, "memory_gb_per_worker": 0.5},
            "checkpoint_every_steps": 10,
        }
    )


def stage_train_job(ctx: DemoContext) -> None:
    """Backfill daily driver_stats snapshots, then train the ETA model as a job through the job controller."""
    as_of = ctx.facts["as_of"]
    first = as_of - timedelta(days=TRAINING_DAYS)
    repo = registered_repository(ctx.settings, "rideshare")
    BatchPipeline(repo, ctx.settings, ctx.raw_uri).backfill(first, as_of - timedelta(days=1), ["driver_stats"])
    ours = running_controller() is None  # the demo stops a controller it started, and only that one
    controller = job_controller(ctx.settings, [local_cluster()])
    try:
        _train(controller, ctx)
    finally:
        if ours:
            ray.get(controller.stop.remote())
            ray.kill(controller)


def _train(controller: Any, ctx: DemoContext) -> None:
    job = submit(controller, eta_spec(ctx))
    print(f"submitted {job.job_id} (tier {job.tier}); snapshots {job.training_snapshot}")
    done = wait(controller, job.job_id, JOB_TIMEOUT_S)
    status = ray.get(controller.status.remote(job.job_id))
    print(format_table([(e["message"],) for e in status["events"]], ["job controller events"]))
    ctx.facts["training_job"] = job.job_id
    if done.state is not JobState.SUCCEEDED:
        raise StageFailed(f"training job {job.job_id} {done.state}: {done.message}", f"ma-ray jobs logs {job.job_id}")
    outcome = status["outcome"]
    metrics = ", ".join(f"{k} {v:.3g}" for k, v in sorted(outcome["metrics"].items()))
    print(f"{outcome['rows']:,} labelled trips, {outcome['final_step']} rounds, {len(outcome['checkpoints'])} "
          f"checkpoints kept; {metrics}")  # fmt: skip
    print(f"registered {done.model_version} with lineage to its features and snapshots")
    ctx.facts.update(model_version=done.model_version, training_rows=outcome["rows"], metrics=outcome["metrics"])
