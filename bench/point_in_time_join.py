"""Point-in-time joins: the join over Ray datasets and the single-process join, each against pandas.merge_asof.

Figures: label rows joined per second by each implementation (target: the Ray join >= 1.0x merge_asof on 2
CPUs), and the ratio of each to ``pandas.merge_asof(by=key, direction="backward", tolerance=ttl)`` on the same
data in the same run (its time includes the two sorts merge_asof needs; converting to pandas is not timed).
Data: keys uniform over ``--entities`` drivers, timestamps uniform over 28 days, TTL 7 days, three float features.
Run alone: `python bench/point_in_time_join.py [--labels 1000000] [--features 10000000] [--entities 1000000]`.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
import pyarrow as pa
from _harness import Result, Target, report

from ma_ray.palette.offline import point_in_time_join, point_in_time_join_table

DAYS = 28
TTL_S = 7 * 86_400
START_US = 1_704_067_200_000_000  # 2024-01-01 UTC
FEATURES = ("trips_7d", "rating_avg", "acceptance_rate")


def make_data(labels: int, features: int, entities: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    span_us = DAYS * 86_400 * 1_000_000

    def times(n: int) -> pa.Array:
        return pa.array(START_US + rng.integers(0, span_us, n), pa.int64()).cast(pa.timestamp("us", tz="UTC"))

    label_table = pa.table(
        {"driver_id": rng.integers(0, entities, labels), "label_ts": times(labels), "label": rng.random(labels)}
    )
    feature_table = pa.table(
        {
            "driver_id": rng.integers(0, entities, features),
            "feature_timestamp": times(features),
            **{name: rng.random(features) for name in FEATURES},
        }
    )
    return label_table, feature_table


def time_pandas(labels: pa.Table, features: pa.Table) -> tuple[float, int]:
    left, right = labels.to_pandas(), features.to_pandas()
    started = time.perf_counter()
    joined = pd.merge_asof(
        left.sort_values("label_ts", kind="stable"),
        right.sort_values("feature_timestamp", kind="stable"),
        left_on="label_ts",
        right_on="feature_timestamp",
        by="driver_id",
        direction="backward",
        tolerance=pd.Timedelta(seconds=TTL_S),
    )
    return time.perf_counter() - started, int(joined["feature_timestamp"].notna().sum())


def time_single_process(labels: pa.Table, features: pa.Table) -> tuple[float, int]:
    started = time.perf_counter()
    joined = point_in_time_join_table(labels, features, "driver_id", "label_ts", ttl_s=TTL_S)
    return time.perf_counter() - started, joined.num_rows - joined["feature_timestamp"].null_count


def as_blocks(table: pa.Table, blocks: int) -> list[pa.Table]:
    """``table`` as ``blocks`` zero-copy slices of (nearly) equal rows: a Ray dataset's blocks."""
    size = -(-table.num_rows // blocks)
    return [table.slice(i, size) for i in range(0, table.num_rows, size)]


def time_ray(labels: pa.Table, features: pa.Table, blocks: int) -> tuple[float, int, int]:
    import ray
    import ray.data

    label_ds, feature_ds = (ray.data.from_arrow(as_blocks(table, blocks)) for table in (labels, features))
    started = time.perf_counter()
    joined = point_in_time_join(label_ds, feature_ds, "driver_id", "label_ts", ttl_s=TTL_S).materialize()
    elapsed = time.perf_counter() - started
    blocks_out = ray.get(joined.select_columns(["feature_timestamp"]).to_arrow_refs())
    return elapsed, sum(b.num_rows - b["feature_timestamp"].null_count for b in blocks_out), joined.count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=10_000_000)
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--object-store-gib", type=float, default=6.0)
    args = parser.parse_args()
    labels, features = make_data(args.labels, args.features, args.entities)
    scale = f"{args.labels:,} labels x {args.features:,} feature rows"

    pandas_s, pandas_matched = time_pandas(labels, features)
    single_s, single_matched = time_single_process(labels, features)
    if single_matched != pandas_matched:
        raise SystemExit(f"single-process join matched {single_matched:,} labels, merge_asof {pandas_matched:,}")

    import ray

    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray.init(num_cpus=2, object_store_memory=int(args.object_store_gib * 2**30), include_dashboard=False)
    try:
        ray_s, ray_matched, ray_rows = time_ray(labels, features, blocks=8)
    finally:
        ray.shutdown()
    if (ray_rows, ray_matched) != (labels.num_rows, pandas_matched):
        raise SystemExit(
            f"Ray join: {ray_rows:,} rows, {ray_matched:,} matched; want {labels.num_rows:,}, {pandas_matched:,}"
        )

    pandas_rate = labels.num_rows / pandas_s
    report(
        "point_in_time_join",
        [
            Result(f"pandas.merge_asof incl. sorts ({scale})", pandas_rate, "label rows/s"),
            Result(f"single-process join ({scale})", labels.num_rows / single_s, "label rows/s", baseline=pandas_rate),
            Result(
                f"Ray join of Ray datasets (Ray-task shuffle), 2 CPUs ({scale})",
                labels.num_rows / ray_s,
                "label rows/s",
                baseline=pandas_rate,
                target=Target("ratio", ">=", 1.0),
            ),
        ],
    )


if __name__ == "__main__":
    main()
