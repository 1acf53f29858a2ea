"""The main job: ma-ray's whole story on embedded defaults, one stage after another.

Run with `ma-ray demo`, `python -m apps.demo`, or on a cluster with
`ray job submit --working-dir . -- python -m apps.demo --trips 1000000`.
Each stage prints what it did; a stage exists here only once it is built.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pyarrow.compute as pc
import ray
from tqdm import tqdm

from actors.feature_server import FeatureServerPool
from apps.demo_deploy import stage_deploy, stage_predict_http
from apps.demo_production import ServicesUnavailable, check_services, production_settings
from apps.demo_stream import stage_stream
from apps.demo_summary import SUMMARY_FILE, DemoSummary, StageEntry, record_failure
from apps.demo_train import stage_train_job
from ma_ray.config import Settings, load_settings
from ma_ray.datagen import RideshareConfig, read_raw, write_chunk, write_dimensions
from ma_ray.palette import Direction, FeatureRegistry, FeatureRepository, load_repository, registered_repository
from ma_ray.palette.meta_store import open_meta_store
from ma_ray.palette.pipelines import BatchPipeline
from ma_ray.ray_runtime import RayDataStatsActor, init_ray
from ma_ray.text_table import format_table

SAMPLE_REPOSITORY = resources.files("ma_ray.palette") / "samples" / "rideshare"


@dataclass
class DemoContext:
    settings: Settings
    data: RideshareConfig
    raw_uri: str
    facts: dict[str, object] = field(default_factory=dict)


def stage_generate_data(ctx: DemoContext) -> None:
    """Generate the synthetic rideshare world as raw Parquet, one Ray task per chunk of trips."""
    dimension_rows = write_dimensions(ctx.data, ctx.raw_uri)
    write = ray.remote(num_cpus=1)(write_chunk)
    pending = [write.remote(ctx.data, chunk, ctx.raw_uri) for chunk in range(ctx.data.chunks)]
    trips = events = 0
    with tqdm(total=ctx.data.trips, unit="trip", desc="generating trips", file=sys.stdout) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            summary = ray.get(done[0])
            trips, events = trips + summary.trips, events + summary.events
            bar.update(summary.trips)
    hottest_share = sum(count for _, count in _driver_trip_counts(ctx.raw_uri)[:10]) / max(1, trips)
    rows = [
        ("drivers", dimension_rows["drivers"]),
        ("riders", dimension_rows["riders"]),
        ("trips", trips),
        ("trip_events", events),
    ]
    print(format_table(rows, ["table", "rows"]))
    print(f"raw Parquet under {ctx.raw_uri}; the 10 hottest drivers take {hottest_share:.1%} of trips (Zipf)")
    ctx.facts.update(trips=trips, trip_events=events, hottest_share=round(hottest_share, 4))


def stage_apply_features(ctx: DemoContext) -> None:
    """Apply the sample rideshare feature repository: validate, version, and record lineage."""
    store = open_meta_store(ctx.settings)
    try:
        registry = FeatureRegistry(store, user="demo")
        with resources.as_file(SAMPLE_REPOSITORY) as path:
            report = registry.apply(load_repository(path))
        rows = registry.features("rideshare")
        print(
            f"catalog rideshare: {len(report.created)} new, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged group(s); {len(rows)} features, "
            f"{sum(r.derived for r in rows)} derived by DSL; meta store {ctx.settings.meta_store.type}"
        )
        print(
            format_table(
                [(r.ref, r.type, r.source, r.version) for r in rows if r.tier == 1][:8],
                ["feature (tier 1)", "type", "source", "version"],
            )
        )
        ctx.facts.update(features=len(rows), derived_features=sum(r.derived for r in rows))
        print("downstream of raw:trips (what a change to trips touches):")
        print(registry.lineage("raw:trips", Direction.DOWNSTREAM).render())
    finally:
        store.close()


def stage_batch_features(ctx: DemoContext) -> None:
    """Run the batch pipelines generated from the catalog for the last day: Ray Data aggregations over raw
    Parquet, an immutable offline snapshot per group, a bulk load into the online store through a Datasink."""
    as_of = ctx.data.start_date + timedelta(days=ctx.data.days - 1)
    pipeline = BatchPipeline(_registered_repository(ctx), ctx.settings, ctx.raw_uri)
    records = pipeline.run(as_of)
    rows = [
        (
            r.group,
            str(r.snapshot_date),
            r.snapshot_rows,
            r.online_rows,
            f"{r.compute_s or 0:.2f}",
            f"{r.load_s or 0:.2f}",
        )
        for r in records
    ]
    print(format_table(rows, ["group", "snapshot", "rows", "loaded online", "compute s", "load s"]))
    skipped = ", ".join(p.group for p in pipeline.pipelines.streaming) or "none"
    print(
        f"offline snapshots under {ctx.settings.offline_uri}; online store {ctx.settings.online_store.type}; "
        f"streaming groups left to the stream path: {skipped}"
    )
    ctx.facts["as_of"] = as_of
    ctx.facts["snapshots"] = {r.group: {"date": str(r.snapshot_date), "rows": r.snapshot_rows} for r in records}


def stage_lookup(ctx: DemoContext) -> None:
    """Ask a pool of feature-serving actors for features of the hottest drivers, stored and derived."""
    pool = FeatureServerPool(2, "rideshare", ctx.settings.model_dump())
    try:
        _lookup(ctx, pool)
    finally:
        pool.release()


def _lookup(ctx: DemoContext, pool: FeatureServerPool) -> None:
    hot = _hottest_drivers(ctx.raw_uri, 5)
    ctx.facts["hot_drivers"] = hot
    request_ts = datetime.combine(ctx.facts["as_of"], datetime.min.time(), tzinfo=UTC) + timedelta(hours=8)
    rows = [{"driver_id": driver, "request_ts": request_ts} for driver in hot]
    answer = ray.get(pool.get_features(rows, LOOKUP_REFS))
    table = [
        (driver, *(_short(r["values"][ref]) for ref in LOOKUP_REFS), r["meta"][LOOKUP_REFS[0]]["tier"])
        for driver, r in zip(hot, answer["rows"], strict=True)
    ]
    print(format_table(table, ["driver", *(ref.split(":")[3] for ref in LOOKUP_REFS), "tier"]))
    latencies = []
    for _ in range(200):
        started = time.perf_counter()
        ray.get(pool.get_features(rows[:1], LOOKUP_REFS))
        latencies.append((time.perf_counter() - started) * 1000)
    p50, p99 = (sorted(latencies)[int(q * (len(latencies) - 1))] for q in (0.5, 0.99))
    ctx.facts.update(lookup_p50_ms=round(p50, 3), lookup_p99_ms=round(p99, 3), served_by_tier=pool.served_by_tier())
    print(
        f"200 single-driver lookups through the actor pool: p50 {p50:.2f} ms, p99 {p99:.2f} ms; "
        f"served by tier: {ctx.facts['served_by_tier']}"
    )


LOOKUP_REFS = [
    "@palette:rideshare:driver_stats:trip_count_7d:driver_id",
    "@palette:rideshare:driver_stats:acceptance_rate:driver_id",
    "@palette:rideshare:driver_model_inputs:reliability_score:driver_id",
    "@palette:rideshare:driver_model_inputs:peak_hour_request:driver_id",
]


def _short(value: object) -> object:
    return round(value, 3) if isinstance(value, float) else value


def _registered_repository(ctx: DemoContext) -> FeatureRepository:
    return registered_repository(ctx.settings, "rideshare")


def _driver_trip_counts(raw_uri: str) -> list[tuple[str, int]]:
    """(driver, trips) for every driver, busiest first."""
    counts = pc.value_counts(read_raw(raw_uri, "trips").to_table(columns=["driver_id"])["driver_id"]).to_pylist()
    return sorted(((item["values"], item["counts"]) for item in counts), key=lambda pair: -pair[1])


def _hottest_drivers(raw_uri: str, count: int) -> list[str]:
    return [driver for driver, _ in _driver_trip_counts(raw_uri)[:count]]


STAGES: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("generate rideshare data", stage_generate_data),
    ("apply feature repository", stage_apply_features),
    ("batch features to the online store", stage_batch_features),
    ("look up features", stage_lookup),
    ("stream features", lambda ctx: stage_stream(ctx, _registered_repository)),
    ("train a model through the job controller", stage_train_job),
    ("deploy the model", stage_deploy),
    ("predict over HTTP", stage_predict_http),
]


def run(argv: list[str] | None = None) -> DemoSummary:
    """Every stage in order until one fails; the summary is written (``--summary``) whatever happens."""
    args = _parse(argv)
    settings = production_settings() if args.production else load_settings()
    if args.production:
        print("\n".join(check_services(settings)))
    data = RideshareConfig(seed=args.seed, trips=args.trips, days=args.days)
    raw_uri = args.raw_uri or f"{settings.offline_uri}/raw"
    ctx = DemoContext(settings, data, raw_uri)
    ctx.facts["topic"] = args.topic
    summary = DemoSummary.of([title for title, _ in STAGES])
    summary_path = Path(args.summary) if args.summary else settings.state_dir / SUMMARY_FILE
    started_ray = not ray.is_initialized()
    init_ray(settings)
    ray_data_stats = RayDataStatsActor.before_this_run()
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # each stage prints its own summary
    ray.data.DataContext.get_current().enable_progress_bars = False
    print(f"ma-ray demo: {data.trips:,} trips, seed {data.seed}, online store {settings.online_store.type}")
    try:
        for entry, (_, stage) in zip(summary.stages, STAGES, strict=True):
            if not _run_stage(ctx, entry, stage):
                break
        else:
            print(f"\nall {len(STAGES)} stages done")
    finally:
        summary.write(summary_path)
        print(f"summary: {summary_path}")
        ray_data_stats.release()
        if started_ray:
            ray.shutdown()
    return summary


def _run_stage(ctx: DemoContext, entry: StageEntry, stage: Callable[[DemoContext], None]) -> bool:
    """Run one stage into its summary entry (the facts it added are its figures); False if it failed."""
    print(f"\n[{entry.number}/{len(STAGES)}] {entry.title}")
    known = set(ctx.facts)
    started = time.perf_counter()
    try:
        stage(ctx)
    except Exception as error:  # any failure ends the demo with one message, never a traceback
        entry.seconds = round(time.perf_counter() - started, 3)
        print(record_failure(entry, error, ctx.settings.state_dir, len(STAGES)), file=sys.stderr)
        return False
    entry.seconds = round(time.perf_counter() - started, 3)
    entry.outcome = "passed"
    entry.figures = {key: ctx.facts[key] for key in ctx.facts if key not in known}
    print(f"    done in {entry.seconds:.1f}s")
    return True


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ma-ray demo", description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=50_000, help="trips to generate (10k to 10M)")
    parser.add_argument("--days", type=int, default=28, help="days of history")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--raw-uri", default="", help="where raw Parquet goes (default: <offline_uri>/raw)")
    parser.add_argument(
        "--production",
        action="store_true",
        help="real Cassandra, Redis and Kafka (MA_RAY_CONFIG_FILE, else clusters/settings/local-services.yaml)",
    )
    parser.add_argument("--topic", default="demo.trip-events", help="Kafka topic of the stream stage (production)")
    parser.add_argument("--summary", default="", help=f"JSON summary file (default: <state_dir>/{SUMMARY_FILE})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        summary = run(argv)
    except ValueError as error:  # SettingsError and pydantic's ValidationError: a bad setting or argument
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ServicesUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0 if summary.passed else 1


if __name__ == "__main__":
    sys.exit(main())
