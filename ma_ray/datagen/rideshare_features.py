"""Reference computations of the sample catalog's batch features from the raw rideshare tables.

Plain pyarrow, written for clarity: the demo materializes them until generated pipelines exist, and pipeline
tests use them as ground truth.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ma_ray.datagen.raw_parquet import read_raw

FEATURE_TS = "feature_timestamp"


def _window(trips: ds.Dataset, as_of: date, days: int) -> pa.Table:
    end = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) + timedelta(days=1)
    start = end - timedelta(days=days)
    requested = ds.field("requested_at")
    return trips.to_table(
        filter=(requested >= pa.scalar(start, pa.timestamp("us", "UTC")))
        & (requested < pa.scalar(end, pa.timestamp("us", "UTC")))
    )


def driver_stats(raw_uri: str, as_of: date) -> pa.Table:
    """driver_stats as of the end of ``as_of`` (UTC): 7-day trip count, rating mean, acceptance rate,
    driver cancellation rate, mean distance of completed trips; one row per driver with trips in the window."""
    trips = _window(read_raw(raw_uri, "trips"), as_of, 7)
    completed = pc.equal(trips["status"], "completed")
    table = pa.table(
        {
            "driver_id": trips["driver_id"],
            "one": pa.array([1] * trips.num_rows, pa.int64()),
            "rating": pc.cast(trips["driver_rating"], pa.float64()),
            "accepted": pc.cast(trips["driver_accepted"], pa.float64()),
            "cancelled": pc.cast(pc.equal(trips["status"], "cancelled_by_driver"), pa.float64()),
            "distance": pc.if_else(completed, pc.cast(trips["distance_km"], pa.float64()), None),
        }
    )
    grouped = table.group_by("driver_id").aggregate(
        [
            ("one", "sum"),
            ("rating", "mean"),
            ("accepted", "mean"),
            ("cancelled", "mean"),
            ("distance", "mean"),
        ]
    )
    names = {
        "one_sum": "trip_count_7d",
        "rating_mean": "rating_avg",
        "accepted_mean": "acceptance_rate",
        "cancelled_mean": "cancellation_rate",
        "distance_mean": "avg_trip_distance",
    }
    return _finish(grouped, "driver_id", names, as_of)


def rider_stats(raw_uri: str, as_of: date) -> pa.Table:
    """rider_stats as of the end of ``as_of``: 28-day trip count, mean fare, cancellation rate."""
    trips = _window(read_raw(raw_uri, "trips"), as_of, 28)
    table = pa.table(
        {
            "rider_id": trips["rider_id"],
            "one": pa.array([1] * trips.num_rows, pa.int64()),
            "fare": pc.cast(trips["fare_usd"], pa.float64()),
            "cancelled": pc.cast(pc.equal(trips["status"], "cancelled_by_rider"), pa.float64()),
        }
    )
    grouped = table.group_by("rider_id").aggregate([("one", "sum"), ("fare", "mean"), ("cancelled", "mean")])
    names = {"one_sum": "trip_count_28d", "fare_mean": "avg_fare_usd", "cancelled_mean": "cancellation_rate"}
    return _finish(grouped, "rider_id", names, as_of)


def _finish(grouped: pa.Table, key: str, names: dict[str, str], as_of: date) -> pa.Table:
    """Key first, features named as the catalog names them, then the feature timestamp (the window's end)."""
    end = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) + timedelta(days=1) - timedelta(microseconds=1)
    columns = {key: grouped[key], **{name: grouped[column] for column, name in names.items()}}
    columns[FEATURE_TS] = pa.array([end] * grouped.num_rows, pa.timestamp("us", "UTC"))
    return pa.table(columns).sort_by(key)
