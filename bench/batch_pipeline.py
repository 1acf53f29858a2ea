"""The batch pipeline's aggregation: the five driver_stats features over 1M trips, Ray Data against pandas.

Generates a 7-day rideshare world (so the 7-day window of the last day holds every trip) as raw Parquet in a
temporary folder, then times, alternately: the generated Ray Data pipeline (`BatchPipeline.compute`: footer
checks, parallel read, per-batch partial aggregation, hash shuffle of the states, finish, collect) and a
single-process pandas implementation of the same aggregations over the same files. Reports rows/s of each
and their ratio. Run alone: `python bench/batch_pipeline.py [--trips 1000000] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from importlib import resources

import pandas as pd
import pyarrow as pa
from _harness import Result, report

from ma_ray.config import load_settings
from ma_ray.datagen import RideshareConfig, write_chunk, write_dimensions
from ma_ray.palette.pipelines import BatchPipeline, find_raw_input
from ma_ray.palette.repository import load_repository

COLUMNS = ["driver_id", "requested_at", "status", "driver_accepted", "driver_rating", "distance_km"]


def pandas_driver_stats(files: list[str], as_of_end: datetime) -> pd.DataFrame:
    """The five driver features with pandas, one process: the baseline."""
    frame = pd.concat([pd.read_parquet(path, columns=COLUMNS) for path in files], ignore_index=True)
    inside = (frame["requested_at"] >= as_of_end - timedelta(days=7)) & (frame["requested_at"] < as_of_end)
    frame = frame[inside]
    by = frame["driver_id"]
    completed = frame["status"] == "completed"
    return pd.DataFrame(
        {
            "trip_count_7d": by.groupby(by).size(),
            "rating_avg": frame["driver_rating"].astype("float64").groupby(by).mean(),
            "acceptance_rate": frame["driver_accepted"].astype("float64").groupby(by).mean(),
            "cancellation_rate": (frame["status"] == "cancelled_by_driver").astype("float64").groupby(by).mean(),
            "avg_trip_distance": frame["distance_km"].astype("float64").where(completed).groupby(by).mean(),
        }
    )


def generate(config: RideshareConfig, root: str) -> None:
    import ray

    write_dimensions(config, root)
    write = ray.remote(num_cpus=1)(write_chunk)
    ray.get([write.remote(config, chunk, root) for chunk in range(config.chunks)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--buckets", type=int, default=4)
    args = parser.parse_args()

    import ray
    import ray.data

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    config = RideshareConfig(trips=args.trips, days=7)
    as_of = config.start_date + timedelta(days=config.days - 1)
    end = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) + timedelta(days=1)
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        repo = load_repository(path)
    with tempfile.TemporaryDirectory(prefix="ma_ray_bench_batch_") as root:
        started = time.perf_counter()
        generate(config, f"{root}/raw")
        print(f"generated {config.trips:,} trips in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        pipeline = BatchPipeline(repo, load_settings(state_dir=f"{root}/state"), f"{root}/raw", buckets=args.buckets)
        plan = pipeline.plans(["driver_stats"])[0]
        files = list(find_raw_input(pipeline.raw_uri, plan, as_of).files)

        pipeline.compute(plan, as_of)  # warm-up: Ray workers start, modules import
        ray_s, pandas_s = [], []
        snapshot: pa.Table | None = None
        baseline: pd.DataFrame | None = None
        for _ in range(args.repeats):
            started = time.perf_counter()
            snapshot = pipeline.compute(plan, as_of)
            ray_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            baseline = pandas_driver_stats(files, end)
            pandas_s.append(time.perf_counter() - started)
        assert snapshot is not None and baseline is not None
        if snapshot.num_rows != len(baseline) or snapshot["trip_count_7d"].to_pylist() != list(
            baseline.sort_index()["trip_count_7d"]
        ):
            raise SystemExit("the Ray Data pipeline and pandas disagree: the benchmark compares nothing")
        trips = int(sum(snapshot["trip_count_7d"].to_pylist()))

    ray_rate, pandas_rate = trips / statistics.median(ray_s), trips / statistics.median(pandas_s)
    cores = os.cpu_count()
    report(
        "batch_pipeline",
        [
            Result(
                f"Ray Data pipeline, 5 driver features over {trips:,} trips ({cores} cores), median of {args.repeats}",
                ray_rate,
                "rows/s",
                baseline=pandas_rate,
            ),
            Result("single-process pandas, same aggregations and files", pandas_rate, "rows/s"),
            Result("Ray Data pipeline, wall time", statistics.median(ray_s), "s"),
            Result("pandas, wall time", statistics.median(pandas_s), "s"),
            Result("entities (drivers) in the snapshot", snapshot.num_rows, "rows"),
        ],
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
