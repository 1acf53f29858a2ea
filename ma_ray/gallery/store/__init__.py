"""Gallery metadata stores behind one protocol; `open_gallery_store` picks the one the settings name."""

from __future__ import annotations

from ma_ray.config import Settings, backend_class
from ma_ray.gallery.store.base import GalleryStore


def open_gallery_store(settings: Settings) -> GalleryStore:
    store: GalleryStore = backend_class("gallery_store", settings.gallery_store.value).from_settings(settings)
    return store


__all__ = ["GalleryStore", "open_gallery_store"]
