"""The stream aggregator: batch/stream agreement, micro-batch independence, checkpoints, the offline log."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ma_ray.palette.catalog import Feature, FeatureGroup, FeatureRepository
from ma_ray.palette.offline import FEATURE_TIMESTAMP
from ma_ray.palette.pipelines import compute_snapshot, generate_pipelines
from ma_ray.palette.pipelines.spec import epoch_us
from ma_ray.palette.streaming import AtomicFileStore, CheckpointMismatchError, StreamAggregator

AS_OF = date(2026, 1, 10)
END = epoch_us(datetime(2026, 1, 11, tzinfo=UTC))
HOUR = 3600 * 1_000_000
SCHEMA = pa.schema(
    [
        ("driver_id", pa.string()),
        ("event_ts", pa.timestamp("us", tz="UTC")),
        ("x", pa.int16()),
        ("y", pa.float32()),
        ("tag", pa.string()),
    ]
)
FEATURES = {
    "n_all": ("int", {"function": "count", "window": "1d"}),
    "n_1h": ("int", {"function": "count", "window": "1h", "filter": '@basis:tag == "a"'}),
    "n_x": ("int", {"function": "count", "column": "x", "window": "2d"}),
    "sum_x_a": ("int", {"function": "sum", "column": "x", "window": "2d", "filter": '@basis:tag == "a"'}),
    "mean_y": ("float", {"function": "mean", "column": "y", "window": "2d"}),
    "min_y": ("float", {"function": "min", "column": "y", "window": "1d"}),
    "max_x": ("int", {"function": "max", "column": "x", "window": "1d"}),
    "tags": ("int", {"function": "distinct_count", "column": "tag", "window": "2d"}),
    "last_x": ("int", {"function": "last", "column": "x", "window": "2d"}),
    "share_b": ("float", {"function": "mean", "value": '@basis:tag == "b"', "window": "2d"}),
}


def _bound(features=FEATURES):
    repo = FeatureRepository(
        catalog="c",
        entities=[{"name": "driver", "join_key": "driver_id"}],
        groups=[
            FeatureGroup(
                name="g",
                entity="driver",
                owner="o",
                source="streaming",
                raw_source="trip_events",
                features=[Feature(name=n, type=t, aggregation=a) for n, (t, a) in features.items()],
            )
        ],
    )
    return generate_pipelines(repo).plan("g").bind(SCHEMA)


BOUND = _bound()

event = st.fixed_dictionaries(
    {
        "driver_id": st.sampled_from(["d1", "d2", "d3"]),
        "event_ts": st.integers(END - 60 * HOUR, END - 1),
        "x": st.none() | st.integers(-100, 100),
        "y": st.none() | st.floats(-10, 10, width=32),
        "tag": st.none() | st.sampled_from(["a", "b", "c"]),
    }
)


def _stream(events: list[dict], batch: int, checkpoint_at: int | None = None) -> StreamAggregator:
    aggregator = StreamAggregator(BOUND)
    for start in range(0, len(events), batch):
        aggregator.apply([dict(e) for e in events[start : start + batch]])
        if checkpoint_at is not None and start >= checkpoint_at:
            aggregator, offsets = StreamAggregator.restore(BOUND, aggregator.checkpoint({"t:0": start + batch}))
            assert offsets == {"t:0": start + batch}
            checkpoint_at = None
    return aggregator


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    return a == b


@settings(max_examples=60, deadline=None)
@given(events=st.lists(event, min_size=1, max_size=80), batch=st.integers(1, 30), seed=st.integers(0, 99))
def test_stream_values_at_the_day_end_equal_the_batch_snapshot(events: list[dict], batch: int, seed: int) -> None:
    table = pa.Table.from_pylist(events, schema=SCHEMA)
    snapshot = compute_snapshot([table], BOUND, AS_OF).to_pylist()
    arrival = list(events)
    random.Random(seed).shuffle(arrival)
    aggregator = _stream(arrival, batch, checkpoint_at=len(arrival) // 2)
    for row in snapshot:
        streamed = aggregator.values(row["driver_id"], END - 1)
        for name in FEATURES:
            assert _same(streamed[name], row[name]), (row["driver_id"], name, streamed[name], row[name])


@settings(max_examples=40, deadline=None)
@given(events=st.lists(event, min_size=1, max_size=60), a=st.integers(1, 60), b=st.integers(1, 60))
def test_micro_batch_boundaries_do_not_change_the_final_rows(events: list[dict], a: int, b: int) -> None:
    one, two = _stream(events, a), _stream(events, b)
    keys = sorted(one.entities)
    assert one.rows(keys) == two.rows(keys)


def test_rows_carry_the_newest_event_time_and_log_as_declared() -> None:
    aggregator = StreamAggregator(BOUND)
    changed = aggregator.apply(
        [
            {"driver_id": "d1", "event_ts": END - 2 * HOUR, "x": 3, "y": 1.5, "tag": "a"},
            {"driver_id": "d1", "event_ts": END - HOUR // 2, "x": 5, "y": None, "tag": "a"},
            {"driver_id": "d2", "event_ts": END - HOUR, "x": None, "y": 2.0, "tag": "b"},
        ]
    )
    assert changed == {"d1", "d2"}
    rows = {r.key: r for r in aggregator.rows(sorted(changed))}
    assert rows["d1"].feature_ts == END - HOUR // 2
    assert rows["d1"].values["n_1h"] == 1 and rows["d1"].values["n_all"] == 2 and rows["d1"].values["last_x"] == 5
    assert rows["d2"].values["share_b"] == 1.0 and rows["d2"].values["sum_x_a"] is None
    log = aggregator.log_table(list(rows.values()))
    assert log.column_names == ["driver_id", *FEATURES, FEATURE_TIMESTAMP]
    assert log.schema.field("mean_y").type == pa.float64() and log.schema.field("n_all").type == pa.int64()


def test_a_checkpoint_of_other_declarations_is_refused(tmp_path) -> None:
    aggregator = StreamAggregator(BOUND)
    aggregator.apply([{"driver_id": "d1", "event_ts": END - HOUR, "x": 1, "y": 1.0, "tag": "a"}])
    store = AtomicFileStore(tmp_path)
    store.save("actor-0", aggregator.checkpoint({"t:0": 1}))
    restored, offsets = StreamAggregator.restore(BOUND, store.load("actor-0"))
    assert offsets == {"t:0": 1} and restored.rows(["d1"]) == aggregator.rows(["d1"])
    changed = dict(FEATURES, n_all=("int", {"function": "count", "window": "2d"}))
    with pytest.raises(CheckpointMismatchError, match="other aggregations"):
        StreamAggregator.restore(_bound(changed), store.load("actor-0"))
    assert store.load("missing") is None


@settings(max_examples=40, deadline=None)
@given(events=st.lists(event, min_size=1, max_size=60), batch=st.integers(1, 20), seed=st.integers(0, 99))
def test_windows_decay_to_the_watermark_without_new_events(events: list[dict], batch: int, seed: int) -> None:
    """After each micro-batch's `expire`, every key's row equals its windows as of the watermark, through a
    checkpoint too: a quiet key's counts fall as old buckets leave its windows."""
    arrival = list(events)
    random.Random(seed).shuffle(arrival)
    aggregator = StreamAggregator(BOUND)
    for start in range(0, len(arrival), batch):
        aggregator.apply([dict(e) for e in arrival[start : start + batch]])
        aggregator.expire()
        if start == 0:
            aggregator, _ = StreamAggregator.restore(BOUND, aggregator.checkpoint({"t:0": batch}))
    watermark = max(e["event_ts"] for e in events)
    assert aggregator.watermark_us == watermark
    for row in aggregator.rows(sorted(aggregator.entities)):
        assert aggregator.entities[row.key].latest_us <= row.feature_ts <= watermark
        assert row.values == aggregator.values(row.key, watermark), row.key


def test_a_quiet_drivers_hourly_count_falls_to_zero() -> None:
    aggregator = StreamAggregator(BOUND)
    aggregator.apply([{"driver_id": "d1", "event_ts": END - 5 * HOUR, "x": 1, "y": 1.0, "tag": "a"}])
    assert aggregator.expire() == set()
    [before] = aggregator.rows(["d1"])
    assert before.values["n_1h"] == 1 and before.feature_ts == END - 5 * HOUR
    aggregator.apply([{"driver_id": "d2", "event_ts": END - 3 * HOUR, "x": 1, "y": 1.0, "tag": "b"}])
    assert aggregator.expire() == {"d1"}  # d2's event moved the watermark two hours on
    [after] = aggregator.rows(["d1"])
    assert after.feature_ts == END - 3 * HOUR
    assert after.values["n_1h"] == 0 and after.values["n_all"] == 1  # the 1-day window still holds it
