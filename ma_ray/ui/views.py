"""What each page shows, read through the same Python APIs the CLI uses (the feature registry, Gallery, the job
store, the offline store, the stream health board): plain data the templates render. No second source of truth."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from ma_ray.gallery import Gallery
from ma_ray.jobs import JobStore, job_status
from ma_ray.palette import Direction, FeatureRegistry
from ma_ray.palette.offline import OfflineStore
from ma_ray.palette.streaming import HealthBoard
from ma_ray.ui.chart import Chart, training_curve
from ma_ray.ui.graph import GraphLayout, layout


@dataclass(frozen=True)
class FieldChange:
    feature: str
    change: str  # added, removed, changed
    before: str
    after: str


def features_page(registry: FeatureRegistry, query: str = "") -> dict[str, Any]:
    """Catalogs with their groups and features; ``query`` keeps the features whose ref or description hold it."""
    wanted = query.strip().lower()
    rows = [asdict(r) for r in registry.features()]
    if wanted:
        rows = [r for r in rows if wanted in r["ref"].lower() or wanted in r["description"].lower()]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    return {"query": query, "catalogs": registry.catalogs(), "groups": groups, "count": len(rows)}


def group_page(
    registry: FeatureRegistry,
    offline: OfflineStore,
    board: HealthBoard,
    catalog: str,
    group: str,
    version: int | None = None,
) -> dict[str, Any]:
    """One group at a version: its features, every schema version with what changed from the one before, and
    its freshness (newest snapshot, the stream's lag where it streams)."""
    number, definition = registry.group(catalog, group, version)
    versions = registry.versions(catalog, group)
    previous = next((v for v in versions if v.version == number - 1), None)
    changes = schema_diff(json.loads(previous.definition), definition.model_dump(mode="json")) if previous else []
    return {
        "catalog": catalog,
        "group": definition,
        "version": number,
        "versions": versions,
        "changes": changes,
        "snapshot": offline.latest(catalog, group),
        "stream": board.read(catalog, group),
    }


def schema_diff(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    """Feature by feature: added, removed, or changed (type, default, expression, aggregation, description)."""
    old = {f["name"]: f for f in before.get("features", [])}
    new = {f["name"]: f for f in after.get("features", [])}
    changes = [FieldChange(name, "added", "", _describe(new[name])) for name in new if name not in old]
    changes += [FieldChange(name, "removed", _describe(old[name]), "") for name in old if name not in new]
    changes += [
        FieldChange(name, "changed", _describe(old[name]), _describe(new[name]))
        for name in new
        if name in old and old[name] != new[name]
    ]
    return changes


def _describe(feature: dict[str, Any]) -> str:
    shown = [f"{k}={feature[k]}" for k in ("type", "default", "expression") if feature.get(k) is not None]
    if feature.get("aggregation"):
        shown.append(aggregation_text(feature["aggregation"]))
    return ", ".join(shown)


def aggregation_text(aggregation: dict[str, Any]) -> str:
    """``mean(driver_rating) over 7d where <filter>``: an aggregation as its catalog entry reads."""
    over = aggregation.get("column") or aggregation.get("value") or ""
    text = f"{aggregation['function']}({over}) over {aggregation['window']}"
    return text + (f" where {aggregation['filter']}" if aggregation.get("filter") else "")


def lineage_page(registry: FeatureRegistry, node: str, direction: Direction) -> dict[str, Any]:
    """The same tree `ma-ray lineage` prints, laid out for drawing."""
    tree = registry.lineage(node, direction)
    graph: GraphLayout = layout(tree)
    return {"node": node, "direction": direction.value, "graph": graph, "text": tree.render()}


def models_page(gallery: Gallery) -> dict[str, Any]:
    models = gallery.models()
    return {"models": [(m, gallery.store.latest_version(m.name), gallery.aliases(m.name)) for m in models]}


def model_page(gallery: Gallery, name: str) -> dict[str, Any]:
    """A model: its versions, each alias with its history (a timeline), its deployments."""
    model = gallery.model(name)
    aliases = gallery.aliases(name)
    return {
        "model": model,
        "versions": sorted(gallery.versions(name), key=lambda v: -v.version),
        "aliases": aliases,
        "history": {alias: list(reversed(gallery.alias_history(name, alias))) for alias in aliases},
        "deployments": gallery.store.deployments(name, limit=20),
    }


def jobs_page(store: JobStore) -> dict[str, Any]:
    """The queue by tier (1 first), newest first within a tier."""
    records = sorted(store.list(), key=lambda r: (r.tier, -r.created_at))
    by_tier: dict[int, list[Any]] = {}
    for record in records:
        by_tier.setdefault(record.tier, []).append(record)
    return {"by_tier": by_tier, "count": len(records)}


def job_page(store: JobStore, job_id: str) -> dict[str, Any]:
    """A job's record, events, last outcome (checkpoints) and its training curve."""
    status = job_status(store, job_id)
    outcome = status.get("outcome") or {}
    curve: Chart | None = training_curve(outcome.get("history", []))
    return {"status": status, "outcome": outcome, "curve": curve}
