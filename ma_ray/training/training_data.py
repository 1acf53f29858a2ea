"""Training data: labels joined point-in-time with offline feature snapshots, plus derived features and request
fields computed by the same DSL definitions serving uses (vectorized here, scalar online).

Each label row gets, for each stored feature, the newest value at or before its timestamp and within its
group's TTL, never a later one: from the daily snapshots of a batch group, and from the stream log (the rows
the aggregation actors wrote online) of a streaming group; so a model trains on exactly what serving saw.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import pyarrow as pa

from ma_ray.palette.catalog import BASIS_PREFIX, FeatureGroup, FeatureRef, FeatureRepository, SourceKind
from ma_ray.palette.dsl import compile_expression
from ma_ray.palette.offline import FEATURE_TIMESTAMP, OfflineStore, point_in_time_join_table


def training_table(
    repo: FeatureRepository,
    offline: OfflineStore,
    labels: pa.Table,
    label_ts: str,
    refs: Sequence[str],
    transforms: dict[str, str] | None = None,
) -> pa.Table:
    """``labels`` with one column per ref (named by the ref) and per transform. Request fields
    (``@basis:<field>``) come from the label column of that name; entity keys from the join key columns."""
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
    columns.update(_stored_columns(repo, offline, labels, label_ts, _stored_needed(repo, refs, transforms or {})))
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
    repo: FeatureRepository, offline: OfflineStore, labels: pa.Table, label_ts: str, stored: list[str]
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
        joined = point_in_time_join_table(
            labels.select([join_key, label_ts]),
            _history(repo, offline, group, [join_key, FEATURE_TIMESTAMP, *names]),
            join_key,
            label_ts,
            feature_columns=names,
            ttl_s=group.ttl_s,
            prefix="f.",
        )
        columns.update({str(ref): joined[f"f.{ref.feature}"] for ref in group_refs})
    return columns


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
