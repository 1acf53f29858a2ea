"""The Ray Data point-in-time join gives the brute-force reference's rows (in any order) on a real local Ray."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ma_ray.palette.offline import point_in_time_join, point_in_time_join_table
from ma_ray.palette.offline.distributed_join import bucket_of
from tests.unit.test_offline_point_in_time import brute_force, expected_table, make_tables, random_case


def one_row_per_version(features: pa.Table) -> pa.Table:
    """The last of the rows sharing a key and feature timestamp: "the later row wins" among them holds over Ray
    only when Ray Data hands the blocks over in input order, which a repartitioned dataset need not do."""
    rows = features.to_pylist()
    last = {(row["k"], row["feature_timestamp"]): i for i, row in enumerate(rows)}
    return features.take(sorted(last.values()))


def _run(labels: pa.Table, features: pa.Table, **kwargs: object) -> list[dict[str, object]]:
    import ray.data

    joined = point_in_time_join(
        ray.data.from_arrow(labels).repartition(3),
        ray.data.from_arrow(features).repartition(4),
        "k",
        "ts",
        **kwargs,
    )
    return sorted(joined.take_all(), key=lambda row: row["label_id"])


@pytest.mark.parametrize(("seed", "string_keys", "ttl_s"), [(1, False, None), (2, True, 300), (3, True, None)])
def test_matches_brute_force(ray_cluster: str, seed: int, string_keys: bool, ttl_s: int | None) -> None:
    labels, features = random_case(np.random.default_rng(seed), 1_500, 2_500, string_keys)
    features = one_row_per_version(features)
    got = _run(labels, features, ttl_s=ttl_s, num_partitions=5)
    want = expected_table(labels, brute_force(labels, features, "k", "ts", ttl_s), ["value", "row_no"])
    assert got == want


def test_matches_the_single_process_join_with_options(ray_cluster: str) -> None:
    labels, features = random_case(np.random.default_rng(4), 3_000, 3_000, string_keys=False)
    features = one_row_per_version(features)
    got = _run(labels, features, feature_columns=["value"], ttl_s=1_000, prefix="drv_")
    want = point_in_time_join_table(labels, features, "k", "ts", feature_columns=["value"], ttl_s=1_000, prefix="drv_")
    assert got == want.to_pylist()


def test_keys_without_features_and_a_single_bucket(ray_cluster: str) -> None:
    labels, features = make_tables([("a", 5), ("b", 5), (None, 5)], [("a", 1, 1.0)], pa.string())
    got = _run(labels, features, num_partitions=1)
    assert [row["value"] for row in got] == [1.0, None, None]


def test_bad_input_fails_before_running(ray_cluster: str) -> None:
    import ray.data

    labels, features = make_tables([("a", 5)], [("a", 1, 1.0)], pa.string())
    with pytest.raises(TypeError, match="join key 'k' is int64 in labels but string"):
        point_in_time_join(
            ray.data.from_arrow(labels.set_column(0, "k", pa.array([1]))), ray.data.from_arrow(features), "k", "ts"
        )
    with pytest.raises(ValueError, match=r"features lack column.*feature_timestamp"):
        point_in_time_join(
            ray.data.from_arrow(labels), ray.data.from_arrow(features.drop_columns(["feature_timestamp"])), "k", "ts"
        )


def test_buckets_are_stable_and_agree_across_integer_widths() -> None:
    wide, narrow = pa.array([1, 2, 3, 10**6], pa.int64()), pa.array([1, 2, 3, 10**6], pa.int32())
    assert bucket_of(wide, 7).tolist() == bucket_of(narrow, 7).tolist()
    strings = pa.array(["a", "b", None])
    assert bucket_of(strings, 7).tolist() == bucket_of(strings.cast(pa.large_string()), 7).tolist()


def test_buckets_are_stable_small_and_spread() -> None:
    keys = pa.array(np.arange(100_000, dtype=np.int64))
    buckets = bucket_of(keys, 8)
    assert buckets.dtype == np.uint8 and buckets.max() < 8
    assert bucket_of(keys, 8).tolist() == buckets.tolist()  # the same in every call (and process)
    counts = np.bincount(buckets, minlength=8)
    assert counts.min() > 0.9 * counts.mean()  # consecutive ids spread evenly
    assert bucket_of(keys, 1000).dtype == np.uint16
