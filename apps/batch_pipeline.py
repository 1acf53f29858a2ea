"""The batch feature pipeline as a job: raw Parquet -> aggregations -> offline snapshots -> online store.

Runs the batch groups a catalog declares, one snapshot per day of [--start, --end]:

    python -m apps.batch_pipeline --catalog rideshare --start 2026-01-21 --end 2026-01-28
    ray job submit --working-dir . -- python -m apps.batch_pipeline --catalog rideshare --start ... --backfill

Incremental runs (the default) publish each day's snapshot and bulk-load it into the online store; --backfill
only publishes snapshots of past days (training data). --stream-fallback also runs streaming groups, loading
their values into each group's batch-fallback table (served while the stream lags past the group's lag_sla_s).
Days already done are skipped unless --force. The catalog comes from the meta store (`ma-ray apply` first) or
from --repository. Exit status: 0 all runs succeeded, 1 a run failed (the previous snapshot stays live),
2 bad arguments or declarations.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from ma_ray.config import Settings, SettingsError, load_settings
from ma_ray.engine import Engine, EngineChoice
from ma_ray.palette import FeatureRepository, RepositoryError, load_repository
from ma_ray.palette.pipelines import (
    LOCAL_BELOW_ROWS,
    BatchPipeline,
    BatchRunError,
    PipelineError,
    RetryPolicy,
    RunMode,
    RunRecord,
)
from ma_ray.ray_runtime import init_ray
from ma_ray.text_table import format_table


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        overrides = {"ray_address": args.ray_address} if args.ray_address else {}
        settings = load_settings(**overrides)
        repo = repository_from_args(args, settings)
        retry = RetryPolicy(attempts=args.attempts, backoff_s=args.backoff_s)
        engine = EngineChoice(args.engine, args.local_below_rows)
        pipeline = BatchPipeline(repo, settings, args.raw_uri, retry=retry, buckets=args.buckets, engine=engine)
        groups = args.groups.split(",") if args.groups else None
        pipeline.plans(groups, args.stream_fallback)  # refuses unknown (or streaming) groups before Ray starts
    except (SettingsError, RepositoryError, PipelineError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    init_ray(settings)
    _quiet_ray_data(args.progress)
    mode = RunMode.BACKFILL if args.backfill else RunMode.INCREMENTAL
    try:
        records = pipeline.run(
            args.start, args.end or args.start, groups, mode, force=args.force, stream_fallback=args.stream_fallback
        )
    except BatchRunError as error:
        _show(error.records, args.json)
        print(f"error: {error}", file=sys.stderr)
        return 1
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _show(records, args.json)
    return 0


def repository_from_args(args: argparse.Namespace, settings: Settings) -> FeatureRepository:
    if args.repository:
        repo = load_repository(args.repository)
        if repo.catalog != args.catalog:
            raise RepositoryError(f"{args.repository} declares catalog '{repo.catalog}', not '{args.catalog}'")
        return repo
    from ma_ray.palette import UnknownFeatureError, registered_repository

    try:
        return registered_repository(settings, args.catalog)
    except UnknownFeatureError as error:
        raise RepositoryError(f"{error}, or pass --repository") from None


def _quiet_ray_data(progress: bool) -> None:
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = progress


def _show(records: list[RunRecord], as_json: bool) -> None:
    if as_json:
        print(json.dumps([json.loads(r.model_dump_json()) for r in records], indent=2))
        return
    rows = [
        (
            r.group,
            r.snapshot_date.isoformat(),
            r.mode,
            r.status,
            r.attempts,
            r.inputs.get("rows", ""),
            r.engine or "",
            r.snapshot_rows,
            "" if r.online_rows is None else r.online_rows,
            (r.snapshot_version or "")[:12],
            r.run_id,
        )
        for r in records
    ]
    print(
        format_table(
            rows,
            ["group", "date", "mode", "status", "attempts", "raw rows", "engine", "rows", "online", "version", "run"],
        )
    )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m apps.batch_pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True, help="the catalog whose batch groups to run")
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", type=date.fromisoformat, help="last day, YYYY-MM-DD (default: --start)")
    parser.add_argument("--backfill", action="store_true", help="snapshots only; leave the online store alone")
    parser.add_argument("--force", action="store_true", help="rerun days already done")
    parser.add_argument("--groups", help="comma-separated batch groups (default: all)")
    parser.add_argument(
        "--stream-fallback",
        action="store_true",
        help="also compute streaming groups' batch values, which readers get while a stream lags its SLA",
    )
    parser.add_argument("--repository", help="feature repository path (default: the registered catalog)")
    parser.add_argument("--raw-uri", help="raw Parquet root (default: <offline_uri>/raw)")
    parser.add_argument("--ray-address", help="join this Ray cluster (default: settings' ray_address)")
    parser.add_argument("--attempts", type=int, default=3, help="attempts per run before it fails (default 3)")
    parser.add_argument("--backoff-s", type=float, default=2.0, help="first retry delay, doubled each time")
    parser.add_argument("--buckets", type=int, default=4, help="shuffle partitions of the aggregation")
    parser.add_argument(
        "--engine",
        choices=[e.value for e in Engine],
        default=Engine.AUTO.value,
        help="local (this process), ray_data, or auto: local below --local-below-rows raw rows (default auto)",
    )
    parser.add_argument(
        "--local-below-rows",
        type=int,
        default=LOCAL_BELOW_ROWS,
        help=f"raw rows below which auto computes in this process (default {LOCAL_BELOW_ROWS:,})",
    )
    parser.add_argument("--progress", action="store_true", help="show Ray Data progress bars")
    parser.add_argument("--json", action="store_true", help="print the run records as JSON")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
