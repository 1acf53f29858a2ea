"""The batch pipeline's aggregation: the five driver_stats features over 1M trips, Ray Data against pandas.

Generates a 7-day rideshare world (so the 7-day window of the last day holds every trip) as raw Parquet in a
temporary folder, then times, alternately, `BatchPipeline.compute` on each engine (Ray Data: read tasks sized
by rows, a partial aggregation per block, the states combined in the driver; Ray Data with the states shuffled
by key bucket, what runs past `DRIVER_COMBINE_MAX_ROWS`; local: Arrow kernels in this process, what `auto`
picks below `LOCAL_BELOW_ROWS`) and a single-process pandas implementation of the same aggregations over the
same files. Reports rows/s of each and their ratio to pandas.
Run alone: `python bench/batch_pipeline.py [--trips 1000000] [--repeats 3]`.
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
from _harness import Result, Target, report

from ma_ray.config import load_settings
from ma_ray.datagen import RideshareConfig, write_chunk, write_dimensions
from ma_ray.engine import Engine, EngineChoice
from ma_ray.palette import load_repository
from ma_ray.palette.pipelines import LOCAL_BELOW_ROWS, BatchPipeline, find_raw_input

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
        settings = load_settings(state_dir=f"{root}/state")
        engines = {
            "ray_data": BatchPipeline(repo, settings, f"{root}/raw", engine=EngineChoice(Engine.RAY_DATA)),
            "ray_data_shuffle": BatchPipeline(
                repo, settings, f"{root}/raw", engine=EngineChoice(Engine.RAY_DATA), driver_combine_max_rows=0
            ),
            "local": BatchPipeline(repo, settings, f"{root}/raw", engine=EngineChoice(Engine.LOCAL)),
        }
        plan = engines["local"].plans(["driver_stats"])[0]
        raw = find_raw_input(f"{root}/raw", plan, as_of)
        auto = BatchPipeline(repo, settings, f"{root}/raw").engine.pick(raw.rows)
        seconds: dict[str, list[float]] = {name: [] for name in [*engines, "pandas"]}
        snapshots = {name: pipeline.compute(plan, as_of, raw) for name, pipeline in engines.items()}  # warm-up
        baseline: pd.DataFrame | None = None
        for _ in range(args.repeats):
            for name, pipeline in engines.items():
                started = time.perf_counter()
                snapshots[name] = pipeline.compute(plan, as_of, raw)
                seconds[name].append(time.perf_counter() - started)
            started = time.perf_counter()
            baseline = pandas_driver_stats(list(raw.files), end)
            seconds["pandas"].append(time.perf_counter() - started)
        assert baseline is not None
        counts = list(baseline.sort_index()["trip_count_7d"])
        for name, snapshot in snapshots.items():
            if snapshot.num_rows != len(baseline) or snapshot["trip_count_7d"].to_pylist() != counts:
                raise SystemExit(f"{name} and pandas disagree: the benchmark compares nothing")
        trips = int(sum(counts))

    rate = {name: trips / statistics.median(times) for name, times in seconds.items()}
    cores = os.cpu_count()
    labels = {
        "ray_data": "Ray Data pipeline (states combined in the driver)",
        "ray_data_shuffle": "Ray Data pipeline, states shuffled by key bucket",
        "local": "local pipeline (Arrow kernels, this process)",
    }
    results = [
        Result(
            f"{label}, 5 driver features over {trips:,} trips ({cores} cores), median of {args.repeats}",
            rate[name],
            "rows/s",
            baseline=rate["pandas"],
            target=Target("ratio", ">=", 1.0) if name in ("ray_data", "local") else None,
        )
        for name, label in labels.items()
    ]
    results += [
        Result("single-process pandas, same aggregations and files", rate["pandas"], "rows/s"),
        *(Result(f"{name} wall time", statistics.median(times), "s") for name, times in seconds.items()),
        Result(f"engine auto picks at {raw.rows:,} raw rows: {auto} (local below {LOCAL_BELOW_ROWS:,})", 1, "run"),
        Result("entities (drivers) in the snapshot", snapshots["local"].num_rows, "rows"),
    ]
    report("batch_pipeline", results)
    ray.shutdown()


if __name__ == "__main__":
    main()
