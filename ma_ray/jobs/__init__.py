"""Training jobs: job specs and their validation, resource vectors, the cluster registry, the tiered scheduler
(and its FIFO baseline and simulator), the job workflow and its store, and the hand-off from the job controller
to the training entrypoint. Every module here is pure or talks to a store; the actor lives in
`actors.job_controller`.

Two modules are imported by their own path: `ma_ray.jobs.workflow`, the job state machine, read as a namespace
(`workflow.decide`, `workflow.apply`, `workflow.transition`), and `ma_ray.jobs.cli`, the `ma-ray job` commands.
"""

from ma_ray.jobs.baseline import FifoScheduler
from ma_ray.jobs.clusters import Cluster, ClusterRegistry, CostClass, Node
from ma_ray.jobs.entrypoint import job_python, training_entrypoint
from ma_ray.jobs.fault_hooks import allowed_faults, fault_refusals, recorded_faults
from ma_ray.jobs.handoff import portable_settings, settings_env, settings_fingerprint
from ma_ray.jobs.job_store import JobStore, job_status, known_job, open_job_store
from ma_ray.jobs.packing import Placement, Pool, total_workers
from ma_ray.jobs.registration import register_in_gallery
from ma_ray.jobs.resources import Resources
from ma_ray.jobs.scheduler import Decision, ImpossibleJobError, JobRequest, Preempt, ScaleUp, Start, TieredScheduler
from ma_ray.jobs.simulation import SimJob, SimulationReport, simulate
from ma_ray.jobs.spec import (
    ClusterSpec,
    NodeSpec,
    SpecError,
    TrainingJobSpec,
    load_clusters,
    load_clusters_file,
    load_spec,
    parse_spec,
)
from ma_ray.jobs.validation import DEFAULT_HEADROOM, ValidatedJob, job_request, label_types, open_labels, validate_job
from ma_ray.jobs.workflow import Action, AttemptEnd, Draining, JobRecord, JobState

__all__ = [
    "DEFAULT_HEADROOM",
    "Action",
    "AttemptEnd",
    "Cluster",
    "ClusterRegistry",
    "ClusterSpec",
    "CostClass",
    "Decision",
    "Draining",
    "FifoScheduler",
    "ImpossibleJobError",
    "JobRecord",
    "JobRequest",
    "JobState",
    "JobStore",
    "Node",
    "NodeSpec",
    "Placement",
    "Pool",
    "Preempt",
    "Resources",
    "ScaleUp",
    "SimJob",
    "SimulationReport",
    "SpecError",
    "Start",
    "TieredScheduler",
    "TrainingJobSpec",
    "ValidatedJob",
    "allowed_faults",
    "fault_refusals",
    "job_python",
    "job_request",
    "job_status",
    "known_job",
    "label_types",
    "load_clusters",
    "load_clusters_file",
    "load_spec",
    "open_job_store",
    "open_labels",
    "parse_spec",
    "portable_settings",
    "recorded_faults",
    "register_in_gallery",
    "settings_env",
    "settings_fingerprint",
    "simulate",
    "total_workers",
    "training_entrypoint",
    "validate_job",
]
