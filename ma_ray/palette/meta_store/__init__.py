"""Meta store backends behind one protocol; `open_meta_store` picks the one the settings name."""

from ma_ray.config import Settings
from ma_ray.palette.meta_store.base import GroupVersion, MetaStore, VersionConflictError


def open_meta_store(settings: Settings) -> MetaStore:
    store: MetaStore = settings.meta_store.build("store", settings)
    return store


__all__ = ["GroupVersion", "MetaStore", "VersionConflictError", "open_meta_store"]
