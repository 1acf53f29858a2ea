"""The vectorized aggregation: any split of the rows into blocks gives what a plain Python loop gives."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ma_ray.palette.catalog import Feature, FeatureGroup, FeatureRepository
from ma_ray.palette.offline import FEATURE_TIMESTAMP
from ma_ray.palette.pipelines import combine, compute_snapshot, generate_pipelines, partial_aggregate
from ma_ray.palette.pipelines.aggregate import BUCKET, with_buckets

AS_OF = date(2026, 1, 10)
END = datetime(2026, 1, 11, tzinfo=UTC)
SCHEMA = pa.schema(
    [
        ("driver_id", pa.string()),
        ("requested_at", pa.timestamp("us", tz="UTC")),
        ("x", pa.int16()),
        ("y", pa.float32()),
        ("tag", pa.string()),
    ]
)
# name -> (feature type, aggregation)
FEATURES = {
    "n_all": ("int", {"function": "count", "window": "1d"}),
    "n_x": ("int", {"function": "count", "column": "x", "window": "2d"}),
    "sum_x_a": ("int", {"function": "sum", "column": "x", "window": "2d", "filter": '@basis:tag == "a"'}),
    "mean_y": ("float", {"function": "mean", "column": "y", "window": "2d"}),
    "min_y": ("float", {"function": "min", "column": "y", "window": "1d"}),
    "max_x": ("int", {"function": "max", "column": "x", "window": "1d"}),
    "tags": ("int", {"function": "distinct_count", "column": "tag", "window": "2d"}),
    "last_x": ("int", {"function": "last", "column": "x", "window": "2d"}),
    "share_b": ("float", {"function": "mean", "value": '@basis:tag == "b"', "window": "2d"}),
}


def _bound():
    repo = FeatureRepository(
        catalog="t",
        entities=[{"name": "driver", "join_key": "driver_id"}],
        groups=[
            FeatureGroup(
                name="g",
                entity="driver",
                owner="o",
                source="batch",
                raw_source="trips",
                features=[Feature(name=n, type=t, aggregation=a) for n, (t, a) in FEATURES.items()],
            )
        ],
    )
    return generate_pipelines(repo).plan("g").bind(SCHEMA)


BOUND = _bound()

rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(["d1", "d2", "d3", None]),
        st.integers(-3 * 86_400, 3_600),  # seconds relative to the end of the day: some before the window, some after
        st.one_of(st.none(), st.integers(-50, 50)),
        st.one_of(st.none(), st.floats(-100, 100, width=32)),
        st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
    ),
    max_size=60,
)


def _table(rows: list[tuple]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [()] * 5
    times = [END + timedelta(seconds=s) for s in columns[1]]
    return pa.table([list(columns[0]), times, list(columns[2]), list(columns[3]), list(columns[4])], schema=SCHEMA)


def _expected(rows: list[tuple]) -> dict[str, dict[str, object]]:
    """A plain loop over the rows: the definition of each aggregation."""
    inside = [r for r in rows if r[0] is not None and -2 * 86_400 <= r[1] < 0]
    found: dict[str, dict[str, object]] = {}
    for key in sorted({r[0] for r in inside}):
        mine = [r for r in inside if r[0] == key]
        day = [r for r in mine if r[1] >= -86_400]
        xs, ys = [r[2] for r in mine if r[2] is not None], [float(r[3]) for r in mine if r[3] is not None]
        day_x, day_y = [r[2] for r in day if r[2] is not None], [float(r[3]) for r in day if r[3] is not None]
        a_x = [r[2] for r in mine if r[4] == "a" and r[2] is not None]
        flags = [r[4] == "b" for r in mine if r[4] is not None]
        last = max(((r[1], r[2]) for r in mine if r[2] is not None), default=(None, None))[1]
        found[key] = {
            "n_all": len(day),
            "n_x": len(xs),
            "sum_x_a": sum(a_x) if a_x else None,
            "mean_y": sum(ys) / len(ys) if ys else None,
            "min_y": min(day_y, default=None),
            "max_x": max(day_x, default=None),
            "tags": len({r[4] for r in mine if r[4] is not None}),
            "last_x": last,
            "share_b": sum(flags) / len(flags) if flags else None,
        }
    return found


def _assert_matches(table: pa.Table, expected: dict[str, dict[str, object]]) -> None:
    got = {row.pop("driver_id"): row for row in table.to_pylist()}
    assert list(got) == list(expected)
    for key, values in expected.items():
        assert got[key].pop(FEATURE_TIMESTAMP) == END - timedelta(microseconds=1)
        for name, want in values.items():
            have = got[key][name]
            if isinstance(want, float):
                assert have == pytest.approx(want, rel=1e-9, abs=1e-9), (key, name)
            else:
                assert have == want, (key, name)


@settings(max_examples=80, deadline=None)
@given(rows=rows_strategy, cuts=st.lists(st.integers(0, 60), max_size=4))
def test_any_split_gives_the_plain_loop_answer(rows: list[tuple], cuts: list[int]) -> None:
    table = _table(rows)
    bounds = sorted({0, table.num_rows, *(c for c in cuts if c <= table.num_rows)})
    blocks = [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]
    snapshot = compute_snapshot(blocks, BOUND, AS_OF)
    _assert_matches(snapshot, _expected(rows))
    assert snapshot.schema.field("n_all").type == pa.int64()
    assert snapshot.schema.field("mean_y").type == pa.float64()


def test_states_merge_in_any_grouping() -> None:
    """combine(combine(a) + b) == combine(a + b): the merge is associative, as a tree of Ray tasks needs."""
    rows = [(k, -s * 997 % 170_000, s % 7 - 3, float(s % 11), "abc"[s % 3]) for s, k in enumerate(["d1", "d2"] * 40)]
    table = _table(rows)
    parts = [partial_aggregate(table.slice(i, 10), BOUND, AS_OF) for i in range(0, table.num_rows, 10)]
    flat = combine(pa.concat_tables(parts), BOUND)
    nested = combine(pa.concat_tables([combine(pa.concat_tables(parts[:3]), BOUND), *parts[3:]]), BOUND)
    assert flat.sort_by("driver_id").to_pylist() == nested.sort_by("driver_id").to_pylist()


def test_buckets_are_stable_and_in_range() -> None:
    states = partial_aggregate(_table([("d1", -5, 1, 1.0, "a"), ("d2", -5, 1, 1.0, "a")]), BOUND, AS_OF)
    first = with_buckets(states, "driver_id", 4)[BUCKET].to_pylist()
    assert first == with_buckets(states, "driver_id", 4)[BUCKET].to_pylist()
    assert all(0 <= b < 4 for b in first)


def test_empty_input_gives_an_empty_snapshot_with_the_declared_schema() -> None:
    snapshot = compute_snapshot([], BOUND, AS_OF)
    assert snapshot.num_rows == 0
    assert snapshot.column_names == ["driver_id", *FEATURES, FEATURE_TIMESTAMP]
