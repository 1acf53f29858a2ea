"""Where Gallery records lineage (model version -> features, snapshot): an injected sink, so Gallery does not
depend on Palette's storage. `PaletteLineage` adapts a `FeatureRegistry`; it checks every ref before the
version is written, so a version with an unknown feature is refused with nothing written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ma_ray.palette import BASIS_PREFIX, FeatureRef

RecordFn = Callable[[str, int, list[str], str | None], None]


class LineageSink(Protocol):
    def check(self, feature_refs: list[str], snapshot_id: str | None) -> None:
        """Raise (a KeyError or ValueError saying which) if a ref is unknown."""

    def record(self, model: str, version: int, feature_refs: list[str], snapshot_id: str | None) -> None: ...


class PaletteLineage:
    """Palette's `FeatureRegistry` as a lineage sink (duck-typed: ``group`` and ``register_model``)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def check(self, feature_refs: list[str], snapshot_id: str | None) -> None:
        for ref in feature_refs:
            if ref.startswith(BASIS_PREFIX):
                continue
            parsed = FeatureRef.parse(ref)
            _, group = self.registry.group(parsed.catalog, parsed.group)
            group.feature(parsed.feature)

    def record(self, model: str, version: int, feature_refs: list[str], snapshot_id: str | None) -> None:
        self.registry.register_model(model, version, feature_refs, snapshot_id)


class CallableLineage:
    """A bare callable with ``register_model``'s signature (no check before writing)."""

    def __init__(self, record_fn: RecordFn) -> None:
        self._record = record_fn

    def check(self, feature_refs: list[str], snapshot_id: str | None) -> None:
        return None

    def record(self, model: str, version: int, feature_refs: list[str], snapshot_id: str | None) -> None:
        self._record(model, version, feature_refs, snapshot_id)


def as_sink(lineage: LineageSink | RecordFn | None) -> LineageSink | None:
    if lineage is None or (hasattr(lineage, "check") and hasattr(lineage, "record")):
        return lineage
    return CallableLineage(lineage)
