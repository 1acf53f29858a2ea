"""Gallery metadata stores behind one protocol; `open_gallery_store` picks the one the settings name."""

from __future__ import annotations

from ma_ray.config import Settings
from ma_ray.gallery.store.base import GalleryStore


def open_gallery_store(settings: Settings) -> GalleryStore:
    store: GalleryStore = settings.gallery_store.build("store", settings)
    return store


__all__ = ["GalleryStore", "open_gallery_store"]
