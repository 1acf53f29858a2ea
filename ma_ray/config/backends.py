"""Per-backend configs, Feast-style: each store or bus setting is one small pydantic model picked by its ``type``
(``extra="forbid"``), and the model names the classes that implement it. The one place a backend is chosen;
implementations load lazily, so the embedded defaults never import a server's driver.

A config's ``implementations`` maps a role ("store", "health_board", ...) to ``"module:factory"``, where the
factory takes the `Settings` and returns the object (a class's ``from_settings``, or a function).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator


class SettingsError(ValueError):
    """A bad setting: the message names each bad field, its env var, and what is accepted."""


class SettingsGroup(BaseModel):
    """A group of settings: unknown keys are refused, so a typo fails instead of being ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BackendConfig(SettingsGroup):
    """A backend chosen by ``type``; ``backend: cassandra`` in YAML or ``MA_RAY_<SETTING>=cassandra`` is short for
    ``{type: cassandra}``."""

    type: str
    implementations: ClassVar[Mapping[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _type_shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    def factory(self, role: str) -> Callable[..., Any]:
        """The callable that builds this backend's ``role`` from the settings (imported on first use)."""
        try:
            target = self.implementations[role]
        except KeyError:
            roles = ", ".join(self.implementations) or "none"
            raise SettingsError(f"the {self.type} backend has no {role} (it has: {roles})") from None
        module, _, attribute = target.partition(":")
        found: Any = importlib.import_module(module)
        for part in attribute.split("."):
            found = getattr(found, part)
        built: Callable[..., Any] = found
        return built

    def build(self, role: str, settings: Any) -> Any:
        """This backend's ``role`` built from the settings, e.g. ``settings.meta_store.build("store", settings)``."""
        return self.factory(role)(settings)


def tag_or(default: str, *others: str) -> Discriminator:
    """A discriminator reading ``type`` from a mapping, a model or the bare type name, ``default`` (the first
    type) when absent: a setting given without its type keeps the default backend."""

    def tag(value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            return value.get("type", default)
        return getattr(value, "type", default)

    choices = " or ".join(repr(name) for name in (default, *others))
    return Discriminator(tag, custom_error_type="backend_type", custom_error_message=f"use {choices}")


# --- Online store: the read path's primary store, the caches in front of it, the stream health board ----------


class _OnlineStoreConfig(BackendConfig):
    # The seed's tuning table: L1 100 ms / 10,000 entries; the serving deadline after which defaults are served.
    l1_cache_ttl_s: float = Field(default=0.1, gt=0, le=3600)
    l1_cache_max_entries: int = Field(default=10_000, ge=1)
    feature_timeout_s: float = Field(default=0.1, gt=0, le=60)
    # classes of the caches between the L1 and the primary store, nearest first
    cache_layers: ClassVar[tuple[str, ...]] = ()


class SqliteOnlineStoreConfig(_OnlineStoreConfig):
    """Embedded: an SQLite file under the state directory, the L1 in front."""

    type: Literal["sqlite"] = "sqlite"
    implementations: ClassVar[Mapping[str, str]] = {
        "store": "ma_ray.palette.online.sqlite:SqliteOnlineStore.from_settings",
        "health_board": "ma_ray.palette.streaming.health:FileHealthBoard.from_settings",
    }


class CassandraOnlineStoreConfig(_OnlineStoreConfig):
    """Production: Cassandra (the ``cassandra`` settings) behind the L1 and Redis (the ``redis`` settings)."""

    type: Literal["cassandra"] = "cassandra"
    redis_cache_ttl_s: int = Field(default=300, ge=1)
    implementations: ClassVar[Mapping[str, str]] = {
        "store": "ma_ray.palette.online.cassandra:CassandraOnlineStore.from_settings",
        "health_board": "ma_ray.palette.streaming.redis_health:RedisHealthBoard.from_settings",
        "redis_cache": "ma_ray.palette.online.caches:RedisCache.from_settings",
    }
    cache_layers: ClassVar[tuple[str, ...]] = ("redis_cache",)


OnlineStoreConfig = Annotated[
    Annotated[SqliteOnlineStoreConfig, Tag("sqlite")] | Annotated[CassandraOnlineStoreConfig, Tag("cassandra")],
    tag_or("sqlite", "cassandra"),
]


# --- Gallery's metadata store ----------------------------------------------------------------------------------


class SqliteGalleryStoreConfig(BackendConfig):
    type: Literal["sqlite"] = "sqlite"
    implementations: ClassVar[Mapping[str, str]] = {
        "store": "ma_ray.gallery.store.sqlite:SqliteGalleryStore.from_settings",
    }


class CassandraGalleryStoreConfig(BackendConfig):
    type: Literal["cassandra"] = "cassandra"
    implementations: ClassVar[Mapping[str, str]] = {
        "store": "ma_ray.gallery.store.cassandra:CassandraGalleryStore.from_settings",
    }


GalleryStoreConfig = Annotated[
    Annotated[SqliteGalleryStoreConfig, Tag("sqlite")] | Annotated[CassandraGalleryStoreConfig, Tag("cassandra")],
    tag_or("sqlite", "cassandra"),
]


# --- The meta store: the feature registry (catalog, schema versions, lineage) and the job controller's jobs ----


class SqliteMetaStoreConfig(BackendConfig):
    type: Literal["sqlite"] = "sqlite"
    implementations: ClassVar[Mapping[str, str]] = {
        "store": "ma_ray.palette.meta_store.sqlite:SqliteMetaStore.from_settings",
        "job_store": "ma_ray.jobs.job_store:SqliteJobStore.from_settings",
    }


class CassandraMetaStoreConfig(BackendConfig):
    type: Literal["cassandra"] = "cassandra"
    implementations: ClassVar[Mapping[str, str]] = {
        "store": "ma_ray.palette.meta_store.cassandra:CassandraMetaStore.from_settings",
        "job_store": "ma_ray.jobs.job_store:CassandraJobStore.from_settings",
    }


MetaStoreConfig = Annotated[
    Annotated[SqliteMetaStoreConfig, Tag("sqlite")] | Annotated[CassandraMetaStoreConfig, Tag("cassandra")],
    tag_or("sqlite", "cassandra"),
]


# --- The event stream streaming pipelines read ---------------------------------------------------------------


class FileEventStreamConfig(BackendConfig):
    """Embedded: events come from files or an in-process source; no broker."""

    type: Literal["file"] = "file"


class KafkaEventStreamConfig(BackendConfig):
    """Production: Kafka topics on the ``kafka`` settings' brokers."""

    type: Literal["kafka"] = "kafka"


EventStreamConfig = Annotated[
    Annotated[FileEventStreamConfig, Tag("file")] | Annotated[KafkaEventStreamConfig, Tag("kafka")],
    tag_or("file", "kafka"),
]


# --- How alias changes reach every replica --------------------------------------------------------------------


class RayAliasBroadcastConfig(BackendConfig):
    """Embedded: a hub actor of the Ray cluster (in process where no Ray runs)."""

    type: Literal["ray"] = "ray"
    implementations: ClassVar[Mapping[str, str]] = {"bus": "ma_ray.gallery.ray_bus:open_ray_alias_bus"}


class RedisAliasBroadcastConfig(BackendConfig):
    """Production: Redis pub/sub on the ``redis`` settings' server."""

    type: Literal["redis"] = "redis"
    implementations: ClassVar[Mapping[str, str]] = {"bus": "ma_ray.gallery.broadcast:RedisAliasBus.from_settings"}


AliasBroadcastConfig = Annotated[
    Annotated[RayAliasBroadcastConfig, Tag("ray")] | Annotated[RedisAliasBroadcastConfig, Tag("redis")],
    tag_or("ray", "redis"),
]
