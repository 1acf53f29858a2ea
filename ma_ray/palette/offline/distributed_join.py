"""The point-in-time join on Ray Data, for label and feature sets larger than one machine's memory.

Both sides are hash-partitioned by join key into buckets (a stable hash, so a key lands in the same bucket
on every worker), tagged with their side and unioned; ``groupby(bucket).map_groups`` then hands each bucket,
labels and features together, to the single-process join. Every key's rows meet in one bucket, so the result
is the single-process join's, row for row; the order of the output rows differs (grouped by bucket, not the
labels' order), and so does one rule: among feature rows sharing a key and feature timestamp (one version
written twice, identical when it is a replayed write) the shuffle keeps no input order, so any one of them
is taken, where the single-process join takes the last.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ma_ray.palette.offline.point_in_time import JoinSpec, join_with_spec

if TYPE_CHECKING:
    import ray.data

_BUCKET = "__pit_bucket"
_SIDE = "__pit_side"
_LABEL, _FEATURE = 0, 1


def point_in_time_join(
    labels: ray.data.Dataset,
    features: ray.data.Dataset,
    join_key: str,
    label_ts: str,
    feature_ts: str = "feature_timestamp",
    feature_columns: list[str] | None = None,
    ttl_s: int | None = None,
    prefix: str = "",
    num_partitions: int | None = None,
) -> ray.data.Dataset:
    """`point_in_time_join_table` on Ray Data: same arguments, same rows, any order.

    ``num_partitions`` is the number of key buckets (default: 4 per CPU of the cluster); raise it when one
    bucket's labels plus features would not fit comfortably in one worker's memory. Bad inputs fail here,
    before anything runs, with the same errors as the single-process join.
    """
    spec = JoinSpec(join_key, label_ts, feature_ts, tuple(feature_columns) if feature_columns else None, ttl_s, prefix)
    label_schema, feature_schema = _arrow_schema(labels, "labels"), _arrow_schema(features, "features")
    attached = spec.validate(label_schema, feature_schema)
    feature_schema = pa.schema([feature_schema.field(n) for n in (join_key, feature_ts, *attached)])
    output_schema = spec.output_schema(label_schema, feature_schema)
    buckets = num_partitions or _default_partitions()
    if buckets < 1:
        raise ValueError(f"num_partitions must be >= 1, got {buckets}")
    packed = pa.schema(
        [
            pa.field(_BUCKET, pa.int64()),
            pa.field(_SIDE, pa.int8()),
            *(f.with_name(f"l.{f.name}").with_nullable(True) for f in label_schema),
            *(f.with_name(f"f.{f.name}").with_nullable(True) for f in feature_schema),
        ]
    )
    tagged = [
        side.map_batches(_packer(packed, marker, join_key, buckets), batch_format="pyarrow")
        for side, marker in ((labels.select_columns(label_schema.names), _LABEL), (features, _FEATURE))
    ]
    return (
        tagged[0]
        .union(tagged[1])
        .groupby(_BUCKET)
        .map_groups(_bucket_joiner(spec, label_schema, feature_schema, output_schema), batch_format="pyarrow")
    )


def bucket_of(keys: pa.ChunkedArray | pa.Array, buckets: int) -> np.ndarray:
    """The bucket of each key: a hash that is the same in every process (unlike Python's ``hash``)."""
    if pa.types.is_integer(keys.type):
        values = pc.fill_null(keys.cast(pa.int64()), 0).to_numpy()
    else:
        values = keys.cast(pa.large_string()).to_numpy(zero_copy_only=False)
    return (pd.util.hash_array(values) % np.uint64(buckets)).astype(np.int64)


def _packer(packed: pa.Schema, marker: int, join_key: str, buckets: int) -> Callable[[pa.Table], pa.Table]:
    own = "l." if marker == _LABEL else "f."

    def pack(batch: pa.Table) -> pa.Table:
        rows = batch.num_rows
        columns = [pa.array(bucket_of(batch[join_key], buckets)), pa.array(np.full(rows, marker, dtype=np.int8))]
        for field in list(packed)[2:]:
            prefix, name = field.name[:2], field.name[2:]
            columns.append(batch[name].cast(field.type) if prefix == own else pa.nulls(rows, field.type))
        return pa.Table.from_arrays(columns, schema=packed)

    return pack


def _bucket_joiner(
    spec: JoinSpec, label_schema: pa.Schema, feature_schema: pa.Schema, output_schema: pa.Schema
) -> Callable[[pa.Table], pa.Table]:
    def join(bucket: pa.Table) -> pa.Table:
        side = bucket[_SIDE]
        labels = _unpack(bucket.filter(pc.equal(side, _LABEL)), "l.", label_schema)
        features = _unpack(bucket.filter(pc.equal(side, _FEATURE)), "f.", feature_schema)
        return join_with_spec(labels, features, spec).cast(output_schema)

    return join


def _unpack(rows: pa.Table, prefix: str, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays([rows[prefix + f.name] for f in schema], schema=schema.remove_metadata())


def _arrow_schema(dataset: ray.data.Dataset, side: str) -> pa.Schema:
    schema = dataset.schema()
    base = getattr(schema, "base_schema", None)
    if not isinstance(base, pa.Schema):
        raise TypeError(
            f"{side} must be an Arrow-backed Ray dataset (read_parquet, from_arrow, map_batches with "
            f"batch_format='pyarrow'); its schema is {schema!r}"
        )
    return base


def _default_partitions() -> int:
    import ray

    return 4 * max(1, int(ray.cluster_resources().get("CPU", 1)))
