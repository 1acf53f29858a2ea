"""Savers and loaders per framework. Each flavor saves a model object into a local directory (returning
metadata for the manifest) and loads it back from a verified local copy. Frameworks import lazily, so the
per-framework modules (`ma_ray.gallery.flavors.pytorch`, `.xgboost`, `.deepspeed`) are imported by their own path.
``resolve_factory`` turns a model factory's dotted name into the callable, refusing what is not one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ma_ray.gallery.flavors.factory import resolve_factory
from ma_ray.gallery.models import Framework


class Flavor(Protocol):
    framework: Framework
    in_memory: bool  # True: load() returns an object that no longer needs the files

    def save(self, model: Any, dest: Path, **options: Any) -> dict[str, Any]:
        """Write ``model`` under ``dest``; return metadata for the manifest."""

    def load(self, src: Path, metadata: dict[str, Any]) -> Any: ...


def flavor(framework: Framework | str) -> Flavor:
    framework = Framework(framework)
    if framework is Framework.XGBOOST:
        from ma_ray.gallery.flavors.xgboost import XGBoostFlavor

        return XGBoostFlavor()
    if framework is Framework.PYTORCH:
        from ma_ray.gallery.flavors.pytorch import PyTorchFlavor

        return PyTorchFlavor()
    if framework is Framework.DEEPSPEED:
        from ma_ray.gallery.flavors.deepspeed import DeepSpeedFlavor

        return DeepSpeedFlavor()
    raise ValueError(f"no saver/loader for framework '{framework}': publish its files with ArtifactStore.publish")


__all__ = ["Flavor", "flavor", "resolve_factory"]
