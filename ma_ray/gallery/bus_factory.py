"""Pick the alias-change bus the settings name (`alias_broadcast`): Redis pub/sub in production; embedded, a
hub actor shared by every process of the Ray cluster, or an in-process bus where no Ray runs (a CLI call)."""

from __future__ import annotations

from ma_ray.config import Settings
from ma_ray.gallery.broadcast import AliasBus


def open_alias_bus(settings: Settings) -> AliasBus:
    bus: AliasBus = settings.alias_broadcast.build("bus", settings)
    return bus
