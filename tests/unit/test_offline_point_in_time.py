"""The single-process point-in-time join against an obviously correct brute-force reference."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ma_ray.palette.offline import point_in_time_join_table

UTC = pa.timestamp("us", tz="UTC")
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def at(seconds: int | None) -> dt.datetime | None:
    return None if seconds is None else EPOCH + dt.timedelta(seconds=seconds)


def brute_force(labels: pa.Table, features: pa.Table, key: str, label_ts: str, ttl_s: int | None) -> list[Any]:
    """Per label: the matched feature row as a dict, or None. A plain loop over every pair of rows."""
    feature_rows = features.to_pylist()
    matches = []
    for label in labels.to_pylist():
        best = None
        for row in feature_rows:
            if None in (label[key], label[label_ts], row[key], row["feature_timestamp"]):
                continue
            if row[key] != label[key] or row["feature_timestamp"] > label[label_ts]:
                continue
            if ttl_s is not None and (label[label_ts] - row["feature_timestamp"]).total_seconds() > ttl_s:
                continue
            # ">=": a later row in input order with the same timestamp wins.
            if best is None or row["feature_timestamp"] >= best["feature_timestamp"]:
                best = row
        matches.append(best)
    return matches


def expected_table(labels: pa.Table, matches: list[Any], feature_names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for label, match in zip(labels.to_pylist(), matches, strict=True):
        attached = {n: (match[n] if match else None) for n in [*feature_names, "feature_timestamp"]}
        rows.append({**label, **attached})
    return rows


def make_tables(
    label_rows: list[tuple[Any, int | None]],
    feature_rows: list[tuple[Any, int, float | None]],
    key_type: pa.DataType,
) -> tuple[pa.Table, pa.Table]:
    labels = pa.table(
        {
            "k": pa.array([k for k, _ in label_rows], key_type),
            "ts": pa.array([at(t) for _, t in label_rows], UTC),
            "label_id": pa.array(range(len(label_rows)), pa.int64()),
        }
    )
    features = pa.table(
        {
            "k": pa.array([k for k, _, _ in feature_rows], key_type),
            "feature_timestamp": pa.array([at(t) for _, t, _ in feature_rows], UTC),
            "value": pa.array([v for _, _, v in feature_rows], pa.float64()),
            "row_no": pa.array(range(len(feature_rows)), pa.int64()),
        }
    )
    return labels, features


def random_case(
    rng: np.random.Generator, n_labels: int, n_features: int, string_keys: bool
) -> tuple[pa.Table, pa.Table]:
    """Unsorted rows, duplicates, null values, keys without features, labels before any feature row."""
    keys = rng.integers(0, max(2, n_features // 8), n_labels + n_features)
    key_values: list[Any] = [f"drv_{k}" for k in keys] if string_keys else [int(k) * 7_919 for k in keys]
    times = rng.integers(0, 10_000, n_labels + n_features)
    values = np.where(rng.random(n_features) < 0.1, np.nan, rng.random(n_features))
    label_rows = [(key_values[i], int(times[i])) for i in range(n_labels)]
    feature_rows = [
        (key_values[n_labels + i], int(times[n_labels + i]), None if np.isnan(values[i]) else float(values[i]))
        for i in range(n_features)
    ]
    duplicates = rng.choice(n_features, size=n_features // 10)
    feature_rows += [(feature_rows[d][0], feature_rows[d][1], float(rng.random())) for d in duplicates]
    exact = rng.choice(n_features, size=min(n_labels, n_features) // 10)
    label_rows += [(feature_rows[e][0], feature_rows[e][1]) for e in exact]
    return make_tables(label_rows, feature_rows, pa.string() if string_keys else pa.int64())


def check(labels: pa.Table, features: pa.Table, ttl_s: int | None) -> None:
    got = point_in_time_join_table(labels, features, "k", "ts", ttl_s=ttl_s)
    want = expected_table(labels, brute_force(labels, features, "k", "ts", ttl_s), ["value", "row_no"])
    assert got.to_pylist() == want


KEYS = {pa.int64(): st.integers(-3, 3), pa.string(): st.sampled_from(["a", "b", "c", "é", ""])}


@settings(max_examples=300, deadline=None)
@given(
    key_type=st.sampled_from(list(KEYS)),
    data=st.data(),
    ttl_s=st.one_of(st.none(), st.integers(0, 6)),
)
def test_matches_brute_force(key_type: pa.DataType, data: st.DataObject, ttl_s: int | None) -> None:
    keys = st.one_of(st.none(), KEYS[key_type])
    label_rows = data.draw(st.lists(st.tuples(keys, st.one_of(st.none(), st.integers(0, 20))), max_size=25))
    value = st.one_of(st.none(), st.floats(allow_nan=False))
    feature_rows = data.draw(st.lists(st.tuples(keys, st.integers(0, 20), value), max_size=25))
    check(*make_tables(label_rows, feature_rows, key_type), ttl_s)


@pytest.mark.parametrize("string_keys", [False, True])
@pytest.mark.parametrize("ttl_s", [None, 0, 500])
def test_random_medium_cases(string_keys: bool, ttl_s: int | None) -> None:
    labels, features = random_case(np.random.default_rng(7), 400, 600, string_keys)
    check(labels, features, ttl_s)


def test_documented_rules_on_a_small_example() -> None:
    labels, features = make_tables(
        [("a", 10), ("a", 4), ("b", 5), ("a", 3), ("z", 9), (None, 10), ("a", None)],
        [("a", 10, 1.0), ("a", 4, 2.0), ("a", 10, None), ("b", 6, 3.0), ("a", 5, 4.0)],
        pa.string(),
    )
    got = point_in_time_join_table(labels, features, "k", "ts", feature_columns=["value"], ttl_s=5, prefix="f_")
    assert got.column_names == ["k", "ts", "label_id", "f_value", "f_feature_timestamp"]
    # a@10: two rows at 10, the later in input order (value null) wins; a@4: exact time counts;
    # b@5: its only row is later; a@3: before any row; z: no rows; null key / time: no match.
    assert got["f_value"].to_pylist() == [None, 2.0, None, None, None, None, None]
    assert got["f_feature_timestamp"].to_pylist() == [at(10), at(4), None, None, None, None, None]
    expired = point_in_time_join_table(labels, features, "k", "ts", ttl_s=0)
    assert expired["value"].to_pylist()[:2] == [None, 2.0]


def test_ttl_boundary_is_inclusive() -> None:
    labels, features = make_tables([("a", 100), ("a", 101)], [("a", 90, 1.0)], pa.string())
    got = point_in_time_join_table(labels, features, "k", "ts", ttl_s=10)
    assert got["value"].to_pylist() == [1.0, None]


def test_mixed_timestamp_units_and_narrow_int_keys() -> None:
    labels = pa.table({"k": pa.array([1, 2], pa.int32()), "ts": pa.array([1_000, 1_000], pa.timestamp("ms", "UTC"))})
    features = pa.table(
        {
            "k": pa.array([1, 2], pa.int64()),
            "feature_timestamp": pa.array([1_000_000, 1_000_001], pa.timestamp("us", "UTC")),
            "v": [1, 2],
        }
    )
    got = point_in_time_join_table(labels, features, "k", "ts")
    assert got["v"].to_pylist() == [1, None]  # 1 us after the label is later, not "the same millisecond"


@pytest.mark.parametrize("spread", [1, 2**50])
def test_far_apart_timestamps_and_keys(spread: int) -> None:
    """Times too spread to pack with the keys get ranked; integer keys too spread to offset get hashed."""
    ns = pa.timestamp("ns", "UTC")
    keys = [i * spread for i in range(2_000)]
    labels = pa.table({"k": keys, "ts": pa.array([2**62] * len(keys), ns)})
    features = pa.table({"k": keys, "feature_timestamp": pa.array([-(2**62)] * len(keys), ns), "v": keys})
    assert point_in_time_join_table(labels, features, "k", "ts")["v"].to_pylist() == keys


def test_empty_inputs() -> None:
    labels, features = make_tables([], [("a", 1, 1.0)], pa.string())
    assert point_in_time_join_table(labels, features, "k", "ts").num_rows == 0
    labels, features = make_tables([("a", 1)], [], pa.string())
    assert point_in_time_join_table(labels, features, "k", "ts")["value"].to_pylist() == [None]


def assert_refused(labels: pa.Table, features: pa.Table, error: type[Exception], match: str, **kwargs: Any) -> None:
    with pytest.raises(error, match=match):
        point_in_time_join_table(labels, features, "k", "ts", **kwargs)


def test_bad_inputs_name_the_column() -> None:
    labels, features = make_tables([("a", 1)], [("a", 1, 1.0)], pa.string())
    assert_refused(labels.drop_columns(["ts"]), features, ValueError, "labels lack column.*ts")
    assert_refused(labels, features.drop_columns(["k"]), ValueError, "features lack column.*k")
    assert_refused(labels, features, ValueError, "features lack column.*nope", feature_columns=["nope"])
    assert_refused(
        labels.set_column(1, "ts", pa.array([1])), features, TypeError, "labels column 'ts' must be a timestamp"
    )
    naive = features.set_column(1, "feature_timestamp", features["feature_timestamp"].cast(pa.timestamp("us")))
    assert_refused(labels, naive, TypeError, "mix a time-zone-aware and a naive")
    assert_refused(
        labels.set_column(0, "k", pa.array([1])), features, TypeError, "join key 'k' is int64 in labels but string"
    )
    assert_refused(labels.set_column(0, "k", pa.array([1.5])), features, TypeError, "labels join key 'k' must be")
    assert_refused(
        labels.append_column("value", pa.array([1])), features, ValueError, "labels already have column.*value"
    )
    assert_refused(labels, features, ValueError, "ttl_s must be >= 0", ttl_s=-1)
