"""Training data: labels joined point-in-time with offline feature snapshots, plus derived features and request
fields computed by the same DSL definitions serving uses (vectorized here, scalar online).

Each label row gets, for each stored feature, the newest value at or before its timestamp and within its
group's TTL, never a later one: from the daily snapshots of a batch group, and from the stream log (the rows
the aggregation actors wrote online) of a streaming group; so a model trains on exactly what serving saw.

Each group's join runs in this process below ``JOIN_LOCAL_BELOW_ROWS`` label plus feature rows, and over Ray
(`point_in_time_join`, the work spread across the cluster's CPUs) at or above it; the answer is the same.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import pyarrow as pa

from ma_ray.engine import Engine, EngineChoice
from ma_ray.palette import BASIS_PREFIX, FeatureGroup, FeatureRef, FeatureRepository, SourceKind
from ma_ray.palette.dsl import compile_expression
from ma_ray.palette.offline import FEATURE_TIMESTAMP, OfflineStore, point_in_time_join, point_in_time_join_table

# Label plus feature rows below which a group's join runs in this process. Measured on 2 CPUs at 1M labels x 10M
# feature rows (bench/point_in_time_join.py): one process 301k labels/s, over Ray 281k; Ray wins with more CPUs.
JOIN_LOCAL_BELOW_ROWS = 20_000_000
_ROW = "__label_row"


def training_table(
    repo: FeatureRepository,
    offline: OfflineStore,
    labels: pa.Table,
    label_ts: str,
    refs: Sequence[str],
    transforms: dict[str, str] | None = None,
    engine: EngineChoice | None = None,
) -> pa.Table:
    """``labels`` with one column per ref (named by the ref) and per transform. Request fields
    (``@basis:<field>``) come from the label column of that name; entity keys from the join key columns.
    ``engine`` picks where each group's join runs (default: by size, `JOIN_LOCAL_BELOW_ROWS`)."""
    types = {ref: feature.type for ref, (_, feature) in repo.refs().items()}
    known = repo.refs()
    unknown = [ref for ref in refs if ref not in known]
    if unknown:
        raise ValueError(f"unknown feature reference(s): {', '.join(unknown)}")
    columns: dict[str, pa.Array] = {}
    for field in {ref for ref in types if ref.startswith(BASIS_PREFIX)}:
        name = field[len(BASIS_PREFIX) :]
        if name in labels.column_names:
            columns[field] = labels[name]
    choice = engine or EngineChoice(local_below_rows=JOIN_LOCAL_BELOW_ROWS)
    needed = _stored_needed(repo, refs, transforms or {})
    columns.update(_stored_columns(repo, offline, labels, label_ts, needed, choice))
    for ref in refs:
        _, feature = known[ref]
        if feature.expression:
            columns[ref] = compile_expression(feature.expression, types).vectorized(columns)
    out = labels
    for ref in refs:
        out = out.append_column(ref, columns[ref])
    for name, source in (transforms or {}).items():
        out = out.append_column(name, compile_expression(source, types).vectorized(columns))
    return out


def _stored_needed(repo: FeatureRepository, refs: Sequence[str], transforms: dict[str, str]) -> list[str]:
    types = {ref: feature.type for ref, (_, feature) in repo.refs().items()}
    known = repo.refs()
    pending = list(refs) + [r for s in transforms.values() for r in compile_expression(s, types).references]
    stored: list[str] = []
    while pending:
        ref = pending.pop()
        if ref.startswith(BASIS_PREFIX) or ref in stored:
            continue
        _, feature = known[ref]
        if feature.expression:
            pending.extend(compile_expression(feature.expression, types).references)
        else:
            stored.append(ref)
    return stored


def _stored_columns(
    repo: FeatureRepository,
    offline: OfflineStore,
    labels: pa.Table,
    label_ts: str,
    stored: list[str],
    engine: EngineChoice,
) -> dict[str, pa.Array]:
    by_group: dict[str, list[FeatureRef]] = defaultdict(list)
    for ref in stored:
        parsed = FeatureRef.parse(ref)
        by_group[parsed.group].append(parsed)
    columns = {}
    for group_name, group_refs in by_group.items():
        group = next(g for g in repo.groups if g.name == group_name)
        join_key = repo.entity(group.entity or "").join_key
        names = [r.feature for r in group_refs]
        history = _history(repo, offline, group, [join_key, FEATURE_TIMESTAMP, *names])
        join = _join_locally if engine.pick(labels.num_rows + history.num_rows) is Engine.LOCAL else _join_on_ray
        joined = join(labels.select([join_key, label_ts]), history, join_key, label_ts, names, group.ttl_s)
        columns.update({str(ref): joined[f"f.{ref.feature}"] for ref in group_refs})
    return columns


def _join_locally(
    labels: pa.Table, history: pa.Table, join_key: str, label_ts: str, names: list[str], ttl_s: int | None
) -> pa.Table:
    return point_in_time_join_table(labels, history, join_key, label_ts, feature_columns=names, ttl_s=ttl_s,
                                    prefix="f.")  # fmt: skip


def _join_on_ray(
    labels: pa.Table, history: pa.Table, join_key: str, label_ts: str, names: list[str], ttl_s: int | None
) -> pa.Table:
    """The same join over Ray, back in the labels' order (the distributed join answers bucket by bucket)."""
    import ray
    import ray.data

    numbered = labels.append_column(_ROW, pa.array(range(labels.num_rows), pa.int64()))
    joined = point_in_time_join(ray.data.from_arrow(numbered), ray.data.from_arrow(history), join_key, label_ts,
                                feature_columns=names, ttl_s=ttl_s, prefix="f.")  # fmt: skip
    parts = [part for part in ray.get(joined.to_arrow_refs()) if part.num_rows]
    if not parts:  # no labels: the local join gives the empty table its columns
        return _join_locally(labels, history, join_key, label_ts, names, ttl_s)
    return pa.concat_tables(parts).sort_by(_ROW).drop_columns([_ROW])


def _history(repo: FeatureRepository, offline: OfflineStore, group: FeatureGroup, columns: list[str]) -> pa.Table:
    """Every stored version of a group's features: its stream log if it is a streaming group, else its snapshots."""
    if group.source is SourceKind.STREAMING:
        logged = offline.read_stream_log(repo.catalog, group.name, columns)
        if logged is None:
            raise ValueError(f"{repo.catalog}.{group.name} has no stream log: run its streaming pipeline first")
        return logged
    snapshots = [
        offline.read(repo.catalog, group.name, info.snapshot_date, columns=columns)
        for info in offline.snapshots(repo.catalog, group.name)
    ]
    if not snapshots:
        raise ValueError(f"no offline snapshot of {repo.catalog}.{group.name}: run its batch pipeline first")
    return pa.concat_tables(snapshots)
