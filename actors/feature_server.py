"""Feature-serving actors: each holds a feature resolver with its own L1 cache and store clients.

A pool spreads them over the cluster's nodes; callers ask any of them for features by entity keys.
"""

from __future__ import annotations

from typing import Any

import ray

from ma_ray.config import load_settings
from ma_ray.palette import registered_repository
from ma_ray.palette.online import open_online_store
from ma_ray.palette.streaming import StreamLagMonitor, open_health_board
from ma_ray.serving import FeatureAnswer, FeatureResolver, ServingCatalog, shared_feature_metrics


class FeatureServer:
    """The actor's logic, a plain class so it can be tested without Ray; ``FeatureServerActor`` wraps it."""

    def __init__(self, catalog: str, settings_overrides: dict[str, Any] | None = None) -> None:
        settings = load_settings(**(settings_overrides or {}))
        serving_catalog = ServingCatalog(registered_repository(settings, catalog))
        store = open_online_store(settings)
        for table in serving_catalog.fallback_tables():
            store.update(table)
        self.resolver = FeatureResolver(
            serving_catalog,
            store,
            timeout_s=settings.online_store.feature_timeout_s,
            metrics=shared_feature_metrics(),
            lag_monitor=StreamLagMonitor(open_health_board(settings)),
        )

    def get_features(self, rows: list[dict[str, Any]], refs: list[str]) -> FeatureAnswer:
        """Column-wise (``answer.values[ref]``, ``answer.meta[ref]``); also reads as
        {"read_ts", "degraded", "stream_fallback", "rows": [{"values": {ref: v}, "meta": {ref: {...}}}]}."""
        return FeatureAnswer.of(self.resolver.resolve(rows, refs))

    def served_by_tier(self) -> dict[str, int]:
        return dict(self.resolver.store.served)


FeatureServerActor = ray.remote(num_cpus=0.25, max_restarts=-1, max_task_retries=3)(FeatureServer)


class FeatureServerPool:
    """``size`` feature-serving actors spread over the cluster's nodes, asked in turn."""

    def __init__(self, size: int, catalog: str, settings_overrides: dict[str, Any] | None = None) -> None:
        if size < 1:
            raise ValueError("a feature server pool needs at least one actor")
        self.actors = [
            FeatureServerActor.options(scheduling_strategy="SPREAD").remote(catalog, settings_overrides)
            for _ in range(size)
        ]
        self._next = 0

    def get_features(self, rows: list[dict[str, Any]], refs: list[str]) -> ray.ObjectRef:  # -> FeatureAnswer
        actor = self.actors[self._next % len(self.actors)]
        self._next += 1
        return actor.get_features.remote(rows, refs)

    def release(self) -> None:
        """Stop the pool's actors now, not when the driver that made them ends."""
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []

    def served_by_tier(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for counts in ray.get([actor.served_by_tier.remote() for actor in self.actors]):
            for tier, count in counts.items():
                totals[tier] = totals.get(tier, 0) + count
        return totals
