"""From raw trips to served features: reference batch features, bulk load, feature-serving actors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import ray

from actors.feature_server import FeatureServer, FeatureServerPool
from ma_ray.config import Settings, load_settings
from ma_ray.datagen.rideshare_features import driver_stats
from tests.integration.conftest import drop_online_keyspace, online_settings
from tests.rideshare_data import AS_OF, load_sample

TRIPS_7D = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"
RATING = "@palette:rideshare:driver_stats:rating_avg:driver_id"
RELIABILITY = "@palette:rideshare:driver_model_inputs:reliability_score:driver_id"


def test_reference_driver_stats_match_pandas(raw_uri: str) -> None:
    trips = pd.read_parquet(f"{raw_uri}/trips")
    stats = driver_stats(raw_uri, AS_OF).to_pandas().set_index("driver_id")
    expected_counts = trips.groupby("driver_id").size()
    assert stats["trip_count_7d"].to_dict() == expected_counts.to_dict()
    completed = trips[trips.status == "completed"].groupby("driver_id")["distance_km"].mean()
    distances = stats["avg_trip_distance"].dropna()
    assert set(distances.index) == set(completed.index)
    assert (distances - completed.astype(float).reindex(distances.index)).abs().max() < 1e-5
    accepted = trips.groupby("driver_id")["driver_accepted"].mean()
    assert (stats["acceptance_rate"] - accepted).abs().max() < 1e-12


@pytest.fixture(params=["sqlite", "cassandra"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    services = request.getfixturevalue("services") if request.param == "cassandra" else None
    settings = online_settings(services, tmp_path)
    yield settings
    if services is not None:
        drop_online_keyspace(services, settings)


def test_loaded_snapshot_is_served_with_derived_features(settings: Settings, raw_uri: str) -> None:
    expected = load_sample(settings, raw_uri)
    server = FeatureServer("rideshare", settings.model_dump())
    drivers = list(expected.index[:20])
    answer = server.get_features([{"driver_id": d} for d in drivers], [TRIPS_7D, RATING, RELIABILITY])
    assert not answer["degraded"]
    for driver, row in zip(drivers, answer["rows"], strict=True):
        assert row["values"][TRIPS_7D] == expected.loc[driver, "trip_count_7d"]
        reliability = expected.loc[driver, "acceptance_rate"] * (1 - expected.loc[driver, "cancellation_rate"])
        assert row["values"][RELIABILITY] == pytest.approx(reliability)
        assert row["meta"][TRIPS_7D]["feature_ts"] == int(
            datetime(2026, 1, 7, 23, 59, 59, 999999, tzinfo=UTC).timestamp() * 1_000_000
        )
        assert row["meta"][TRIPS_7D]["stale"]  # the snapshot is older than the 7-day TTL: served, flagged
    again = server.get_features([{"driver_id": drivers[0]}], [TRIPS_7D])
    assert again["rows"][0]["meta"][TRIPS_7D]["tier"] == "l1"


def test_actor_pool_survives_a_killed_actor(ray_cluster: str, raw_uri: str, tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    expected = load_sample(settings, raw_uri)
    pool = FeatureServerPool(2, "rideshare", settings.model_dump())
    driver = expected.index[0]
    first = ray.get(pool.get_features([{"driver_id": driver}], [TRIPS_7D]))
    ray.kill(pool.actors[0], no_restart=False)
    answers = [ray.get(pool.get_features([{"driver_id": driver}], [TRIPS_7D])) for _ in range(4)]
    assert all(a["rows"][0]["values"] == first["rows"][0]["values"] for a in answers)
