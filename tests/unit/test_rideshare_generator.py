import numpy as np
import pyarrow.compute as pc
import pytest
from pydantic import ValidationError

from ma_ray.datagen import RideshareConfig, RideshareGenerator
from ma_ray.datagen.rideshare import TRIP_EVENT_SCHEMA, TRIP_SCHEMA, sample_zipf, zipf_cdf

SMALL = RideshareConfig(trips=20_000, chunk_trips=5_000, seed=11)


def test_same_seed_same_data_and_chunks_are_independent() -> None:
    first, second = RideshareGenerator(SMALL), RideshareGenerator(SMALL)
    assert first.trips(2).equals(second.trips(2))
    assert first.drivers().equals(second.drivers())
    # A chunk does not depend on which chunks ran before it in this process.
    fresh = RideshareGenerator(SMALL)
    fresh.trips(0)
    assert fresh.trips(3).equals(RideshareGenerator(SMALL).trips(3))


def test_other_seed_other_data() -> None:
    other = RideshareConfig(trips=20_000, chunk_trips=5_000, seed=12)
    assert not RideshareGenerator(SMALL).trips(0).equals(RideshareGenerator(other).trips(0))


def test_trip_ids_unique_and_entities_valid() -> None:
    generator = RideshareGenerator(SMALL)
    tables = [generator.trips(chunk) for chunk in range(SMALL.chunks)]
    ids = np.concatenate([t["trip_id"].to_numpy() for t in tables])
    assert len(ids) == SMALL.trips == len(np.unique(ids))
    known_drivers = set(generator.drivers()["driver_id"].to_pylist())
    assert set(pc.unique(tables[0]["driver_id"]).to_pylist()) <= known_drivers
    assert tables[0].schema == TRIP_SCHEMA


def test_popularity_is_zipf_skewed() -> None:
    trips = RideshareGenerator(SMALL).trips(0)
    counts = np.sort(pc.value_counts(trips["driver_id"]).field("counts").to_numpy())[::-1]
    top_one_percent = counts[: max(1, SMALL.drivers // 100)].sum() / trips.num_rows
    assert top_one_percent > 0.15  # uniform popularity would give about 0.01


def test_zipf_sampler_matches_its_law() -> None:
    rng = np.random.default_rng(0)
    cdf, by_rank = zipf_cdf(100, 1.0, rng)
    draws = sample_zipf(cdf, by_rank, 200_000, rng)
    hottest = by_rank[0]
    expected = 1.0 / np.sum(1.0 / np.arange(1, 101))
    assert abs(np.mean(draws == hottest) - expected) < 0.01


def test_trip_fields_are_consistent() -> None:
    trips = RideshareGenerator(SMALL).trips(1).to_pandas()
    done = trips[trips.status == "completed"]
    cancelled = trips[trips.status != "completed"]
    assert (done.completed_at > done.requested_at).all()
    assert cancelled.completed_at.isna().all() and cancelled.fare_usd.isna().all()
    assert (done.fare_usd > 0).all() and done.driver_rating.dropna().between(1, 5).all()
    assert trips[~trips.driver_accepted].status.eq("cancelled_by_driver").all()
    assert (trips.date == trips.requested_at.dt.strftime("%Y-%m-%d")).all()


def test_events_follow_each_trip_in_time_order() -> None:
    generator = RideshareGenerator(SMALL)
    trips = generator.trips(0)
    events = generator.trip_events(trips)
    assert events.schema == TRIP_EVENT_SCHEMA
    ts = events["event_ts"].to_numpy()
    assert (np.diff(ts.astype(np.int64)) >= 0).all()
    completed = pc.sum(pc.equal(trips["status"], "completed")).as_py()
    assert events.num_rows == 4 * completed + 2 * (trips.num_rows - completed)
    assert len(np.unique(events["event_id"].to_numpy())) == events.num_rows
    finals = events.filter(pc.equal(events["event_type"], "completed"))
    assert finals["fare_usd"].null_count == 0


@pytest.mark.parametrize(
    ("field", "value"), [("trips", 9_999), ("trips", 10_000_001), ("zipf_exponent", 0), ("days", 0)]
)
def test_bad_config_is_refused_by_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        RideshareConfig(**{field: value})


def test_chunk_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"chunks 0\.\.3"):
        RideshareGenerator(SMALL).trips(4)


def test_entity_counts_default_from_trips() -> None:
    config = RideshareConfig(trips=1_000_000)
    assert (config.drivers, config.riders, config.chunks) == (20_000, 100_000, 40)
