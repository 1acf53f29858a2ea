"""Training data is point-in-time correct, and derived features agree with what serving computes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.compute as pc
import pytest

from ma_ray.datagen import read_raw
from ma_ray.datagen.rideshare_features import driver_stats
from ma_ray.engine import Engine, EngineChoice
from ma_ray.palette.dsl import compile_expression
from ma_ray.palette.offline import OfflineStore
from ma_ray.training.training_data import training_table
from tests.rideshare_data import sample_repository

TRIPS = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"
RELIABILITY = "@palette:rideshare:driver_model_inputs:reliability_score:driver_id"


def test_labels_get_the_snapshot_before_them_and_serving_math(raw_uri: str, tmp_path: Path) -> None:
    repo = sample_repository()
    offline = OfflineStore(str(tmp_path / "offline"))
    for day in (date(2026, 1, 5), date(2026, 1, 6)):
        offline.write_snapshot("rideshare", "driver_stats", day, driver_stats(raw_uri, day), join_key="driver_id")
    trips = read_raw(raw_uri, "trips").to_table(columns=["driver_id", "requested_at", "duration_s", "date"])
    labels = trips.filter(pc.is_in(trips["date"], value_set=trips["date"].unique().sort()[4:7]))  # 01-05..01-07
    table = training_table(
        repo, offline, labels, "requested_at", [TRIPS, RELIABILITY], transforms={"log_trips": f"log1p({TRIPS})"}
    )
    frame = table.to_pandas()
    day6 = driver_stats(raw_uri, date(2026, 1, 6)).to_pandas().set_index("driver_id")
    on_day7 = frame[frame.date == "2026-01-07"]
    assert (on_day7[TRIPS].to_numpy() == day6.loc[on_day7.driver_id, "trip_count_7d"].to_numpy()).all()
    assert frame[frame.date == "2026-01-05"][TRIPS].isna().all()  # no snapshot is older than these labels
    types = {ref: f.type for ref, (_, f) in repo.refs().items()}
    serving = compile_expression(repo.refs()[RELIABILITY][1].expression, types)  # what the resolver runs
    for driver, trained in on_day7[["driver_id", RELIABILITY]].head(50).itertuples(index=False):
        stats = day6.loc[driver]
        online = serving.scalar(
            {
                "@palette:rideshare:driver_stats:acceptance_rate:driver_id": stats["acceptance_rate"],
                "@palette:rideshare:driver_stats:cancellation_rate:driver_id": stats["cancellation_rate"],
            }
        )
        assert trained == pytest.approx(online)
    reliability = on_day7[RELIABILITY].to_numpy()
    expected = day6.loc[on_day7.driver_id, "acceptance_rate"] * (1 - day6.loc[on_day7.driver_id, "cancellation_rate"])
    assert reliability == pytest.approx(expected.to_numpy())
    assert "log_trips" in frame.columns


def test_the_join_over_ray_gives_the_local_table_in_the_labels_order(
    ray_cluster: str, raw_uri: str, tmp_path: Path
) -> None:
    repo = sample_repository()
    offline = OfflineStore(str(tmp_path / "offline"))
    for day in (date(2026, 1, 5), date(2026, 1, 6)):
        offline.write_snapshot("rideshare", "driver_stats", day, driver_stats(raw_uri, day), join_key="driver_id")
    labels = read_raw(raw_uri, "trips").to_table(columns=["driver_id", "requested_at"])
    made = {
        engine: training_table(repo, offline, labels, "requested_at", [TRIPS, RELIABILITY], engine=EngineChoice(engine))
        for engine in (Engine.LOCAL, Engine.RAY_DATA)
    }
    assert made[Engine.LOCAL].num_rows == labels.num_rows and made[Engine.LOCAL][TRIPS].null_count < labels.num_rows
    assert made[Engine.RAY_DATA].equals(made[Engine.LOCAL])
    by_size = training_table(repo, offline, labels, "requested_at", [TRIPS], engine=EngineChoice(local_below_rows=1))
    assert by_size[TRIPS].equals(made[Engine.LOCAL][TRIPS])  # 1 row: over Ray


def test_unknown_refs_and_missing_snapshots(raw_uri: str, tmp_path: Path) -> None:
    repo = sample_repository()
    offline = OfflineStore(str(tmp_path / "offline"))
    labels = read_raw(raw_uri, "trips").to_table(columns=["driver_id", "requested_at"]).slice(0, 10)
    with pytest.raises(ValueError, match="unknown feature reference"):
        training_table(repo, offline, labels, "requested_at", ["@palette:rideshare:driver_stats:nope:driver_id"])
    with pytest.raises(ValueError, match="run its batch pipeline first"):
        training_table(repo, offline, labels, "requested_at", [TRIPS])


def test_streaming_features_come_from_the_stream_log(tmp_path: Path) -> None:
    """Training sees what serving saw: each label gets the newest logged stream row at or before it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ma_ray.palette.offline.snapshot import TIMESTAMP_TYPE

    repo = sample_repository()
    offline = OfflineStore(str(tmp_path / "offline"))
    realtime = "@palette:rideshare:driver_realtime:trip_count_1h:driver_id"
    with pytest.raises(ValueError, match="no stream log"):
        training_table(repo, offline, pa.table({"driver_id": ["d1"], "ts": [0]}), "ts", [realtime])
    hour = 3_600_000_000
    t0 = 1_767_600_000_000_000  # 2026-01-05T08:00Z, in epoch microseconds
    logged = {
        "a0": [("d1", t0, 3), ("d2", t0 + hour, 5)],
        "a1": [("d1", t0 + 2 * hour, 1)],  # a second actor's file: both are read
    }
    for actor, rows in logged.items():
        directory = offline.stream_log_dir("rideshare", "driver_realtime", actor)
        offline.fs.create_dir(directory, recursive=True)
        keys, times, counts = zip(*rows, strict=True)
        table = pa.table(
            {
                "driver_id": pa.array(keys),
                "trip_count_1h": pa.array(counts, pa.int64()),
                "completed_trips_1d": pa.array([0] * len(rows), pa.int64()),
                "feature_timestamp": pa.array(times, pa.int64()).cast(TIMESTAMP_TYPE),
            }
        )
        pq.write_table(table, f"{directory}/p0o0.parquet", filesystem=offline.fs)
    labels = pa.table(
        {
            "driver_id": ["d1", "d1", "d1", "d2"],
            "ts": pa.array([t0 - 1, t0 + hour, t0 + 3 * hour, t0 + hour], pa.int64()).cast(TIMESTAMP_TYPE),
        }
    )
    table = training_table(repo, offline, labels, "ts", [realtime])
    assert table[realtime].to_pylist() == [None, 3, 1, 5]
