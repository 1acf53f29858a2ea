"""The smallest job spec that parses: what tests of specs and of engine choice start from."""

from __future__ import annotations

from typing import Any


def minimal_spec(**changes: Any) -> dict[str, Any]:
    """A tier-2 XGBoost job's spec as data (one feature, a label source, a snapshot), with ``changes`` on top."""
    spec: dict[str, Any] = {
        "name": "eta_minutes",
        "framework": "xgboost",
        "tier": 2,
        "features": ["@palette:rideshare:driver_stats:trip_count_7d:driver_id"],
        "label": {"uri": "/raw", "table": "trips", "timestamp": "requested_at", "value": "@basis:duration_s / 60"},
        "data": {"snapshot": "2026-01-06"},
    }
    spec.update(changes)
    return spec
