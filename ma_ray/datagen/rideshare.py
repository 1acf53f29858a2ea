"""A synthetic rideshare world: drivers, riders, trips and trip events, deterministic by seed.

Trips are generated in fixed-size chunks, each from its own seed derived from (seed, chunk index), so the data
set is the same whether chunks run one after another or in parallel on a Ray cluster. Driver and rider
popularity follow a Zipf law, so a few entities get most trips and hot partitions are real.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

MICROS_PER_SECOND = 1_000_000
MICROS_PER_DAY = 86_400 * MICROS_PER_SECOND

TRIP_STATUSES = ("completed", "cancelled_by_rider", "cancelled_by_driver")
VEHICLE_TYPES = ("uberx", "comfort", "xl", "black")
EVENT_TYPES = ("requested", "accepted", "started", "completed", "cancelled")

# Share of trips requested in each hour of the day (UTC): morning and evening peaks.
_HOURLY_WEIGHTS = np.array([2, 1, 1, 1, 1, 2, 4, 7, 9, 7, 5, 5, 6, 5, 5, 6, 7, 9, 10, 8, 6, 5, 4, 3], dtype=np.float64)

TIMESTAMP = pa.timestamp("us", tz="UTC")

DRIVER_SCHEMA = pa.schema(
    [
        ("driver_id", pa.string()),
        ("city_id", pa.int16()),
        ("vehicle_type", pa.string()),
        ("signup_ts", TIMESTAMP),
        ("base_rating", pa.float32()),
        ("acceptance_propensity", pa.float32()),
        ("cancellation_propensity", pa.float32()),
    ]
)
RIDER_SCHEMA = pa.schema([("rider_id", pa.string()), ("city_id", pa.int16()), ("signup_ts", TIMESTAMP)])
TRIP_SCHEMA = pa.schema(
    [
        ("trip_id", pa.int64()),
        ("driver_id", pa.string()),
        ("rider_id", pa.string()),
        ("city_id", pa.int16()),
        ("requested_at", TIMESTAMP),
        ("completed_at", TIMESTAMP),
        ("status", pa.string()),
        ("driver_accepted", pa.bool_()),
        ("distance_km", pa.float32()),
        ("duration_s", pa.int32()),
        ("fare_usd", pa.float32()),
        ("surge_multiplier", pa.float32()),
        ("driver_rating", pa.int8()),
        ("date", pa.string()),
    ]
)
TRIP_EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.int64()),
        ("trip_id", pa.int64()),
        ("driver_id", pa.string()),
        ("rider_id", pa.string()),
        ("city_id", pa.int16()),
        ("event_type", pa.string()),
        ("event_ts", TIMESTAMP),
        ("distance_km", pa.float32()),
        ("fare_usd", pa.float32()),
        ("driver_rating", pa.int8()),
        ("date", pa.string()),
    ]
)
# The event schema of each raw source the rideshare world streams: what its aggregation actors parse.
RAW_EVENT_SCHEMAS: dict[str, pa.Schema] = {"trip_events": TRIP_EVENT_SCHEMA, "trips": TRIP_SCHEMA}


class RideshareConfig(BaseModel):
    """How big and how skewed the world is. Entity counts default to trips/50 drivers and trips/10 riders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=7, ge=0)
    trips: int = Field(default=50_000, ge=10_000, le=10_000_000)
    drivers: int = Field(default=0, ge=0, description="0 = trips // 50")
    riders: int = Field(default=0, ge=0, description="0 = trips // 10")
    cities: int = Field(default=8, ge=1, le=1000)
    start_date: date = date(2026, 1, 1)
    days: int = Field(default=28, ge=1, le=3650)
    zipf_exponent: float = Field(default=1.0, gt=0.0, le=3.0)
    chunk_trips: int = Field(default=25_000, ge=1_000)

    @model_validator(mode="after")
    def _fill_counts(self) -> RideshareConfig:
        object.__setattr__(self, "drivers", self.drivers or max(100, self.trips // 50))
        object.__setattr__(self, "riders", self.riders or max(100, self.trips // 10))
        return self

    @property
    def chunks(self) -> int:
        return -(-self.trips // self.chunk_trips)

    @property
    def start_micros(self) -> int:
        start = datetime(self.start_date.year, self.start_date.month, self.start_date.day, tzinfo=UTC)
        return int(start.timestamp()) * MICROS_PER_SECOND


def driver_id(index: np.ndarray) -> np.ndarray:
    return np.char.add("drv_", np.char.zfill(index.astype(str), 7))


def rider_id(index: np.ndarray) -> np.ndarray:
    return np.char.add("rdr_", np.char.zfill(index.astype(str), 8))


def zipf_cdf(n: int, exponent: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative popularity, entity index by rank): rank r has weight 1/r**exponent; ranks are shuffled
    over entity ids so the hottest entities are not simply the lowest ids."""
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return cdf, rng.permutation(n)


def sample_zipf(cdf: np.ndarray, by_rank: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    ranks = np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)
    return by_rank[ranks]


class RideshareGenerator:
    """Makes the tables of one `RideshareConfig`. Every method is a pure function of the config."""

    def __init__(self, config: RideshareConfig) -> None:
        self.config = config
        rng = np.random.default_rng([config.seed, 0])
        self._driver_cdf, self._driver_rank = zipf_cdf(config.drivers, config.zipf_exponent, rng)
        self._rider_cdf, self._rider_rank = zipf_cdf(config.riders, config.zipf_exponent, rng)
        self._driver_city = rng.integers(0, config.cities, config.drivers).astype(np.int16)
        self._driver_accept = rng.beta(8, 2, config.drivers).astype(np.float32)
        self._driver_cancel = rng.beta(1, 15, config.drivers).astype(np.float32)
        self._driver_rating = np.clip(rng.normal(4.7, 0.2, config.drivers), 3.0, 5.0).astype(np.float32)

    def drivers(self) -> pa.Table:
        cfg, rng = self.config, np.random.default_rng([self.config.seed, 1])
        index = np.arange(cfg.drivers)
        return pa.Table.from_arrays(
            [
                pa.array(driver_id(index)),
                pa.array(self._driver_city),
                pa.array(np.array(VEHICLE_TYPES)[rng.integers(0, len(VEHICLE_TYPES), cfg.drivers)]),
                pa.array(cfg.start_micros - rng.integers(1, 1000, cfg.drivers) * MICROS_PER_DAY, TIMESTAMP),
                pa.array(self._driver_rating),
                pa.array(self._driver_accept),
                pa.array(self._driver_cancel),
            ],
            schema=DRIVER_SCHEMA,
        )

    def riders(self) -> pa.Table:
        cfg, rng = self.config, np.random.default_rng([self.config.seed, 2])
        return pa.Table.from_arrays(
            [
                pa.array(rider_id(np.arange(cfg.riders))),
                pa.array(rng.integers(0, cfg.cities, cfg.riders).astype(np.int16)),
                pa.array(cfg.start_micros - rng.integers(1, 1000, cfg.riders) * MICROS_PER_DAY, TIMESTAMP),
            ],
            schema=RIDER_SCHEMA,
        )

    def chunk_size(self, chunk: int) -> int:
        cfg = self.config
        if not 0 <= chunk < cfg.chunks:
            raise ValueError(f"chunk {chunk} is out of range: this config has chunks 0..{cfg.chunks - 1}")
        return min(cfg.chunk_trips, cfg.trips - chunk * cfg.chunk_trips)

    def trips(self, chunk: int) -> pa.Table:
        """Trips of one chunk; trip ids are global (chunk * chunk_trips + i) and unique."""
        cfg, size = self.config, self.chunk_size(chunk)
        rng = np.random.default_rng([cfg.seed, 100, chunk])
        drivers = sample_zipf(self._driver_cdf, self._driver_rank, size, rng)
        riders = sample_zipf(self._rider_cdf, self._rider_rank, size, rng)
        requested = self._request_times(size, rng)
        accepted = rng.random(size) < self._driver_accept[drivers]
        status = self._statuses(drivers, accepted, rng)
        completed = status == 0
        distance = np.round(rng.lognormal(1.6, 0.6, size), 2).astype(np.float32)
        duration = (distance / rng.uniform(18, 40, size) * 3600 + rng.integers(60, 300, size)).astype(np.int32)
        surge = np.where(rng.random(size) < 0.15, rng.uniform(1.1, 2.5, size), 1.0).astype(np.float32)
        fare = np.round((2.5 + 1.4 * distance + 0.004 * duration) * surge, 2).astype(np.float32)
        rating = np.clip(np.rint(rng.normal(self._driver_rating[drivers], 0.6)), 1, 5).astype(np.int8)
        rated = completed & (rng.random(size) < 0.7)
        done_at = requested + (rng.integers(120, 600, size) + duration) * MICROS_PER_SECOND
        return pa.Table.from_arrays(
            [
                pa.array(chunk * cfg.chunk_trips + np.arange(size, dtype=np.int64)),
                pa.array(driver_id(drivers)),
                pa.array(rider_id(riders)),
                pa.array(self._driver_city[drivers]),
                pa.array(requested, TIMESTAMP),
                pa.array(done_at, TIMESTAMP, mask=~completed),
                pa.array(np.array(TRIP_STATUSES)[status]),
                pa.array(accepted),
                pa.array(distance, mask=~completed),
                pa.array(duration, mask=~completed),
                pa.array(fare, mask=~completed),
                pa.array(surge),
                pa.array(rating, mask=~rated),
                pa.array(_dates(requested)),
            ],
            schema=TRIP_SCHEMA,
        )

    def _request_times(self, size: int, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        day = rng.integers(0, cfg.days, size)
        hour = rng.choice(24, size, p=_HOURLY_WEIGHTS / _HOURLY_WEIGHTS.sum())
        within_hour = rng.integers(0, 3600 * MICROS_PER_SECOND, size)
        return cfg.start_micros + day * MICROS_PER_DAY + hour * 3600 * MICROS_PER_SECOND + within_hour

    def _statuses(self, drivers: np.ndarray, accepted: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """0 completed, 1 cancelled by rider, 2 cancelled by driver (always when the driver declined)."""
        draw = rng.random(len(drivers))
        by_driver = ~accepted | (draw < self._driver_cancel[drivers])
        by_rider = ~by_driver & (draw > 0.93)
        return np.where(by_driver, 2, np.where(by_rider, 1, 0))

    def trip_events(self, trips: pa.Table) -> pa.Table:
        """The event stream of some trips, ordered by event time: requested, then accepted/started/completed
        for completed trips, or cancelled. Completion events carry distance, fare and rating."""
        t = {name: trips.column(name).to_numpy(zero_copy_only=False) for name in trips.column_names}
        completed = t["status"] == "completed"
        requested = t["requested_at"].astype("datetime64[us]").astype(np.int64)
        done = np.where(completed, t["completed_at"].astype("datetime64[us]").astype(np.int64), 0)
        offsets = np.array([0, 30, 240], dtype=np.int64) * MICROS_PER_SECOND
        steps = [
            ("requested", np.ones_like(completed), requested),
            ("accepted", completed, requested + offsets[1]),
            ("started", completed, requested + offsets[2]),
            ("completed", completed, done),
            ("cancelled", ~completed, requested + offsets[1]),
        ]
        parts = [self._events_of(trips, kind, mask, ts, t) for kind, mask, ts in steps]
        events = pa.concat_tables(parts).sort_by([("event_ts", "ascending"), ("trip_id", "ascending")])
        return events

    @staticmethod
    def _events_of(trips: pa.Table, kind: str, mask: np.ndarray, ts: np.ndarray, t: dict[str, Any]) -> pa.Table:
        rows = np.flatnonzero(mask)
        trip_id = t["trip_id"][rows]
        final = kind == "completed"
        nulls = pa.nulls(len(rows))
        return pa.Table.from_arrays(
            [
                pa.array(trip_id * 8 + EVENT_TYPES.index(kind)),
                pa.array(trip_id),
                trips.column("driver_id").take(rows),
                trips.column("rider_id").take(rows),
                trips.column("city_id").take(rows),
                pa.array(np.full(len(rows), kind)),
                pa.array(ts[rows], TIMESTAMP),
                trips.column("distance_km").take(rows) if final else nulls.cast(pa.float32()),
                trips.column("fare_usd").take(rows) if final else nulls.cast(pa.float32()),
                trips.column("driver_rating").take(rows) if final else nulls.cast(pa.int8()),
                pa.array(_dates(ts[rows])),
            ],
            schema=TRIP_EVENT_SCHEMA,
        )


def _dates(micros: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(micros.astype("datetime64[us]"), unit="D")


def dates_between(config: RideshareConfig) -> list[str]:
    return [(config.start_date + timedelta(days=d)).isoformat() for d in range(config.days)]
