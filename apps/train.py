"""The training job entrypoint: ``python -m apps.train --job-id ID --attempt N`` (what the job controller submits
as a Ray job) or ``python -m apps.train --spec job.yaml`` (a spec run directly, e.g. with ``ray job submit``).

It loads the spec, builds the point-in-time training table (labels from the spec's label source joined with the
offline feature snapshots, DSL transforms applied), trains with the framework's trainer on the engine the job's
size picks (`ma_ray.training.engine_choice`; ``--engine`` overrides the spec's) with ``run_id`` = the job id, so a
retried attempt resumes from the newest valid checkpoint, publishes the model artifact and writes the
attempt's outcome to the job store, where the controller reads it to register the model in Gallery.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ma_ray.config import Settings, load_settings
from ma_ray.engine import Engine, EngineChoice
from ma_ray.jobs import TrainingJobSpec, allowed_faults, label_types, load_spec, open_labels, parse_spec
from ma_ray.palette import BASIS_PREFIX, FeatureRef
from ma_ray.training import (
    FaultInjection,
    TrainingOutcome,
    TrainingRun,
    TrainingShape,
    checkpoint_root,
    local_refusal,
    training_engine,
)


def column_name(ref: str) -> str:
    """A training-table column name for a feature ref or transform that every framework accepts."""
    return re.sub(r"[^A-Za-z0-9_]", "_", ref.removeprefix("@palette:").removeprefix(BASIS_PREFIX))


def build_labels(spec: TrainingJobSpec) -> pa.Table:
    """The label rows of the spec's window: the copied columns, the timestamp, the label (and text) column."""
    from ma_ray.palette.dsl import compile_expression

    label = spec.label
    dataset = open_labels(spec)
    start, end = spec.data.bounds()
    stamp = ds.field(label.timestamp)
    window = (stamp >= pa.scalar(start, pa.timestamp("us", "UTC"))) & (
        stamp < pa.scalar(end, pa.timestamp("us", "UTC"))
    )
    # raw tables are hive-partitioned by the event's day (date=YYYY-MM-DD): prune whole days before reading rows
    if "date" in dataset.schema.names and pa.types.is_string(dataset.schema.field("date").type):
        window = window & (ds.field("date") >= str(start.date())) & (ds.field("date") <= str(end.date()))
    table = dataset.to_table(filter=window)
    types = label_types(table.schema)
    inputs = {ref: table[ref[len(BASIS_PREFIX) :]] for ref in types}
    if label.where is not None:
        keep = compile_expression(label.where, types).vectorized(inputs)
        table = table.filter(pc.fill_null(keep, False))
        inputs = {ref: table[ref[len(BASIS_PREFIX) :]] for ref in types}
    columns: dict[str, Any] = {out: table[src] for out, src in label.columns.items()}
    columns.setdefault(label.timestamp, table[label.timestamp])
    columns[label.name] = pc.cast(compile_expression(label.value, types).vectorized(inputs), pa.float64())
    if label.text:
        columns[label.text] = table[label.text]
    return pa.table(columns).sort_by(label.timestamp)


def build_table(spec: TrainingJobSpec, settings: Settings) -> pa.Table:
    """Labels joined point-in-time with the offline snapshots, features renamed by `column_name`, as float64."""
    from ma_ray.palette import registered_repository
    from ma_ray.palette.offline import OfflineStore
    from ma_ray.training import training_table

    catalog = next(FeatureRef.parse(r).catalog for r in spec.features if not r.startswith(BASIS_PREFIX))
    repo = registered_repository(settings, catalog)
    labels = build_labels(spec)
    table = training_table(
        repo, OfflineStore(settings.offline_uri), labels, spec.label.timestamp, list(spec.features), spec.transforms
    )
    keep = [spec.label.name, *([spec.label.text] if spec.label.text else [])]
    columns = {column_name(c): pc.cast(table[c], pa.float64()) for c in spec.feature_columns}
    return pa.table({**columns, **{c: table[c] for c in keep}})


def largest_node_cpus() -> float:
    """The CPUs of the cluster's largest live node (what one process can hold at most)."""
    import ray

    if not ray.is_initialized():
        ray.init()
    return max((float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]), default=0.0)


def training_shape(spec: TrainingJobSpec, rows: int, workers: int | None) -> TrainingShape:
    """What the engine choice looks at, for ``rows`` rows and ``workers`` workers (default: the spec's)."""
    resources = spec.resources
    workers = workers or resources.workers
    return TrainingShape(spec.trainer_framework, rows, workers * resources.cpus_per_worker,
                         workers * resources.gpus_per_worker, largest_node_cpus())  # fmt: skip


def pick_engine(spec: TrainingJobSpec, rows: int, workers: int, engine: str | None = None) -> Engine:
    """The engine that trains ``rows`` rows with ``workers`` workers: ``engine`` (a CLI override), else the spec's
    (auto: one process when the job can run so, below ``local_below_rows``)."""
    choice = EngineChoice(engine or spec.engine, spec.local_below_rows, Engine.RAY_TRAIN)
    return training_engine(choice, training_shape(spec, rows, workers))


def warm_up_local_engine(spec: TrainingJobSpec, workers: int | None, engine: str | None) -> Any:
    """When the job may train in one process, start that process while the table is built; the warm-up task's
    ref (None: no warm-up), for the caller to cancel if the job trains on Ray Train after all."""
    from ma_ray.training.trainers import warm_up_single_process

    shape = training_shape(spec, 0, workers)
    if (engine or spec.engine) == Engine.RAY_TRAIN or local_refusal(shape) is not None:
        return None
    return warm_up_single_process(shape.cpus)


def training_run(
    spec: TrainingJobSpec,
    settings: Settings,
    run_id: str,
    table: pa.Table,
    workers: int | None = None,
    faults: FaultInjection | None = None,
    engine: str | None = None,
) -> TrainingRun:
    """The trainer's input: a time-ordered split (the newest ``validation_fraction`` validates); ``workers``
    overrides the spec's count (the scheduler may start an elastic job with fewer), ``engine`` the spec's."""
    cut = int(table.num_rows * (1 - spec.validation_fraction))
    valid = table.slice(cut) if spec.validation_fraction and cut < table.num_rows else None
    resources = spec.resources
    workers = workers or resources.workers
    return TrainingRun(
        run_id=run_id,
        checkpoint_uri=checkpoint_root(settings),
        train=table.slice(0, cut),
        valid=valid,
        label_column=spec.label.name,
        feature_columns=tuple(column_name(c) for c in spec.feature_columns),
        params=dict(spec.hyperparameters),
        num_workers=workers,
        cpus_per_worker=resources.cpus_per_worker,
        use_gpu=resources.gpus_per_worker > 0,
        estimated_duration_s=spec.estimated_duration_s,
        checkpoint_every_steps=spec.checkpoint_every_steps,
        max_failures=spec.max_failures,
        faults=faults or FaultInjection(),
        text_column=spec.label.text,
        engine=pick_engine(spec, cut, workers, engine),
    )


def publish(spec: TrainingJobSpec, settings: Settings, outcome: TrainingOutcome) -> dict[str, Any]:
    """Save the model with its Gallery flavor and publish it as an artifact; returns what registration needs."""
    from ma_ray.gallery import ArtifactStore
    from ma_ray.gallery.flavors import flavor

    saver = flavor(spec.trainer_framework)
    with tempfile.TemporaryDirectory(prefix="ma_ray_train_") as tmp:
        metadata = saver.save(outcome.model, Path(tmp) / "artifact", **outcome.save_options)
        published = ArtifactStore.from_settings(settings).publish(
            spec.name, Path(tmp) / "artifact", saver.framework.value, metadata
        )
    return {
        "uri": published.uri,
        "checksum": published.checksum,
        "size_bytes": published.size_bytes,
        "flavor": saver.framework.value,
    }


def train(
    spec: TrainingJobSpec,
    settings: Settings,
    run_id: str,
    workers: int | None = None,
    faults: FaultInjection | None = None,
    engine: str | None = None,
) -> dict[str, Any]:
    """Train one attempt of ``run_id`` and publish its model; returns the outcome as JSON-able data."""
    from ma_ray.training.trainers import fit

    started = time.time()
    warming = warm_up_local_engine(spec, workers, engine)
    table = build_table(spec, settings)
    if table.num_rows == 0:
        raise ValueError(f"no label rows in {spec.label.table} between {spec.data.bounds()[0]} and the window's end")
    run = training_run(spec, settings, run_id, table, workers, faults, engine)
    if warming is not None and run.engine is not Engine.LOCAL:
        import ray

        ray.cancel(warming)  # its CPUs go to the worker group (a no-op once it has run)
    print(f"training on {run.engine.value}: {table.num_rows} rows, {run.num_workers} x {run.cpus_per_worker:g} CPUs")
    outcome = fit(spec.trainer_framework, run)
    for line in outcome.log_lines:
        print(line)
    result: dict[str, Any] = {
        "status": outcome.status,
        "metrics": {k: float(v) for k, v in outcome.metrics.items()},
        "resumed_from_step": outcome.resumed_from_step,
        "final_step": outcome.final_step,
        "checkpoints": list(outcome.checkpoints),
        "history": list(outcome.history)[-50:],  # the progress curve, newest steps
        "rows": table.num_rows,
        "engine": run.engine.value,
        "seconds": time.time() - started,
    }
    if outcome.status == "succeeded":
        result["artifact"] = publish(spec, settings, outcome)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.train", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--job-id", help="a job of the job store (what the job controller submits)")
    source.add_argument("--spec", help="a job spec YAML file, run without the controller")
    parser.add_argument("--attempt", type=int, default=1, help="the attempt number the outcome is recorded under")
    parser.add_argument("--workers", type=int, default=None, help="workers to train with (default: the spec's)")
    engines = [e.value for e in (Engine.AUTO, Engine.LOCAL, Engine.RAY_TRAIN)]
    parser.add_argument(
        "--engine", choices=engines, help="the engine to train on (default: the spec's, auto unless set)"
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.spec:
        spec = load_spec(args.spec)
        run_id = f"{spec.name}-{int(time.time())}"
        print(json.dumps(train(spec, settings, run_id, args.workers, engine=args.engine), indent=2))
        return 0
    from ma_ray.jobs import open_job_store

    store = open_job_store(settings)
    try:
        record = store.get(args.job_id)
        if record is None:
            raise SystemExit(f"no job {args.job_id!r} in the job store ({settings.meta_store.type})")
        faults = allowed_faults(record.faults, settings)
        result = train(parse_spec(record.spec), settings, record.job_id, args.workers, faults, args.engine)
        store.put_outcome(record.job_id, args.attempt, result)
    finally:
        store.close()
    print(f"attempt {args.attempt} of {args.job_id}: {result['status']}, step {result['final_step']}, "
          f"resumed from {result['resumed_from_step']}, metrics {result['metrics']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
