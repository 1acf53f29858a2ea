"""Each grouped setting's flat name, its ``MA_RAY_*`` environment variable without the prefix: a server's
settings are ``<server>_<field>`` (``cassandra_hosts``), a backend's type is its setting's name
(``online_store``) and its other fields keep their own names (``l1_cache_ttl_s``). These are the names users
already set; the grouped form (``cassandra: {hosts: [...]}``, ``MA_RAY_CASSANDRA__HOSTS``) reads the same."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

from ma_ray.config.backends import (
    BackendConfig,
    CassandraGalleryStoreConfig,
    CassandraMetaStoreConfig,
    CassandraOnlineStoreConfig,
    FileEventStreamConfig,
    KafkaEventStreamConfig,
    RayAliasBroadcastConfig,
    RedisAliasBroadcastConfig,
    SettingsGroup,
    SqliteGalleryStoreConfig,
    SqliteMetaStoreConfig,
    SqliteOnlineStoreConfig,
)
from ma_ray.config.servers import CassandraSettings, KafkaSettings, RaySettings, RedisSettings

SERVERS: dict[str, type[SettingsGroup]] = {
    "cassandra": CassandraSettings,
    "redis": RedisSettings,
    "kafka": KafkaSettings,
    "ray": RaySettings,
}
BACKENDS: dict[str, tuple[type[BackendConfig], ...]] = {
    "online_store": (SqliteOnlineStoreConfig, CassandraOnlineStoreConfig),
    "gallery_store": (SqliteGalleryStoreConfig, CassandraGalleryStoreConfig),
    "meta_store": (SqliteMetaStoreConfig, CassandraMetaStoreConfig),
    "event_stream": (FileEventStreamConfig, KafkaEventStreamConfig),
    "alias_broadcast": (RayAliasBroadcastConfig, RedisAliasBroadcastConfig),
}


def _flat_names() -> dict[str, tuple[str, str]]:
    names = {f"{server}_{field}": (server, field) for server, group in SERVERS.items() for field in group.model_fields}
    for setting, configs in BACKENDS.items():
        for config in configs:
            names.update({field: (setting, field) for field in config.model_fields if field != "type"})
        names[setting] = (setting, "type")
    return names


# flat name -> (group, field)
FLAT_NAMES: dict[str, tuple[str, str]] = _flat_names()
_BY_PATH = {path: name for name, path in FLAT_NAMES.items()}


def _tags(setting: str) -> set[str]:
    return {str(config.model_fields["type"].default) for config in BACKENDS.get(setting, ())}


def settings_path(loc: Sequence[str | int]) -> list[str]:
    """A validation error's location without the backend tag pydantic puts in it (``online_store.cassandra.x``)."""
    path = [str(part) for part in loc]
    if len(path) > 2 and path[1] in _tags(path[0]):
        del path[1]
    return path


def flat_env_name(path: Sequence[str], prefix: str) -> str:
    """The environment variable that sets ``path`` (a top-level name, or group and field)."""
    if len(path) == 1:
        return prefix + path[0].upper()
    name = _BY_PATH.get((path[0], path[1]))
    return prefix + (name.upper() if name else "__".join(path).upper())


def _merge(into: dict[str, Any], group: str, values: Mapping[str, Any]) -> None:
    current = into.get(group)
    if isinstance(current, str):
        current = {"type": current}
    into[group] = {**(current or {}), **values}


def nest_flat_names(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with flat names and bare backend types moved into their groups; grouped values pass through."""
    nested: dict[str, Any] = {}
    for key, value in data.items():
        if key in BACKENDS or key in SERVERS:
            _merge(nested, key, {"type": value} if isinstance(value, str) else value)
        elif key not in FLAT_NAMES:
            nested[key] = value
    for key, value in data.items():  # after the groups: a flat name is the more specific, whatever the order
        if key in FLAT_NAMES and key not in BACKENDS:
            group, field = FLAT_NAMES[key]
            _merge(nested, group, {field: value})
    return nested


def flat_values(dumped: Mapping[str, Any]) -> dict[str, Any]:
    """A settings dump (grouped) as flat names -> values: the inverse of `nest_flat_names`."""
    flat: dict[str, Any] = {}
    for key, value in dumped.items():
        if key in BACKENDS or key in SERVERS:
            flat.update({_BY_PATH[(key, field)]: inner for field, inner in value.items()})
        else:
            flat[key] = value
    return flat


def setting_rows(dumped: Mapping[str, Any], prefix: str = "MA_RAY_") -> list[tuple[tuple[str, ...], Any, str]]:
    """(path, value, environment variable) for every setting of a dump, grouped settings one row per field."""
    rows: list[tuple[tuple[str, ...], Any, str]] = []
    for key, value in sorted(dumped.items()):
        if key in BACKENDS or key in SERVERS:
            rows += [((key, field), inner, flat_env_name((key, field), prefix)) for field, inner in value.items()]
        else:
            rows.append(((key,), value, flat_env_name((key,), prefix)))
    return rows


def flat_env_values(prefix: str) -> dict[str, str]:
    """The flat environment variables of grouped settings (``MA_RAY_CASSANDRA_HOSTS``) by flat name; a backend's
    type variable is pydantic-settings' own (`GroupedEnvSource`), as is the grouped spelling."""
    environ = {name.upper(): value for name, value in os.environ.items()}
    return {
        name: environ[prefix + name.upper()]
        for name in FLAT_NAMES
        if name not in BACKENDS and prefix + name.upper() in environ
    }


class NestedSource(PydanticBaseSettingsSource):
    """The values of ``read`` (another source, or a function) with flat names and bare backend types moved into
    their groups, so that sources merge group by group."""

    def __init__(self, settings_cls: type[BaseSettings], read: Callable[[], Mapping[str, Any]]) -> None:
        super().__init__(settings_cls)
        self._read = read

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return nest_flat_names(self._read())


class GroupedEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, where a backend's variable may hold its bare type
    (``MA_RAY_ONLINE_STORE=cassandra``) as well as JSON; its grouped fields (``MA_RAY_ONLINE_STORE__...``) still
    merge in."""

    def decode_complex_value(self, field_name: str, field: Any, value: Any) -> Any:
        if field_name in BACKENDS and isinstance(value, str) and not value.lstrip().startswith("{"):
            return {"type": value}
        return super().decode_complex_value(field_name, field, value)
