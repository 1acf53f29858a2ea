"""Settings: every backend choice and endpoint of ma-ray, grouped by subsystem.

Values come, highest priority first, from keyword arguments, ``MA_RAY_*`` environment variables, a YAML file
(``MA_RAY_CONFIG_FILE`` or ``Settings.from_yaml(path)``) and the defaults below, which are the embedded
backends: a laptop needs no server to run the main job. Each setting has one flat name, its environment
variable without the prefix (``cassandra_hosts`` is ``MA_RAY_CASSANDRA_HOSTS``, ``online_store`` picks the online
store's type); YAML files and keyword arguments take the grouped form (``cassandra: {hosts: [...]}``) or the flat
names. The flat names are read by `flat_names`; every source goes through pydantic-settings.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from ma_ray.config.backends import (
    AliasBroadcastConfig,
    EventStreamConfig,
    FileEventStreamConfig,
    GalleryStoreConfig,
    MetaStoreConfig,
    OnlineStoreConfig,
    RayAliasBroadcastConfig,
    SettingsError,
    SqliteGalleryStoreConfig,
    SqliteMetaStoreConfig,
    SqliteOnlineStoreConfig,
)
from ma_ray.config.flat_names import (
    FLAT_NAMES,
    GroupedEnvSource,
    NestedSource,
    flat_env_name,
    flat_env_values,
    nest_flat_names,
    settings_path,
)
from ma_ray.config.servers import CassandraSettings, KafkaSettings, RaySettings, RedisSettings, split_csv

ENV_PREFIX = "MA_RAY_"
CONFIG_FILE_ENV = "MA_RAY_CONFIG_FILE"

ServiceName = Literal["redis", "cassandra", "kafka"]

_yaml_path: ContextVar[Path | None] = ContextVar("ma_ray_settings_yaml", default=None)


def _check_yaml(path: Path) -> Path:
    if not path.is_file():
        raise SettingsError(f"settings file {path} does not exist (set {CONFIG_FILE_ENV} to a readable YAML file)")
    if not isinstance(yaml.safe_load(path.read_text()) or {}, dict):
        raise SettingsError(f"settings file {path} must hold a mapping of setting: value")
    return path


class Settings(BaseSettings):
    """Every backend choice and endpoint of ma-ray. Build with ``load_settings()`` for friendly errors."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    # Backends, each picked by its `type`: embedded defaults; production is cassandra / kafka / redis.
    online_store: OnlineStoreConfig = SqliteOnlineStoreConfig()
    gallery_store: GalleryStoreConfig = SqliteGalleryStoreConfig()
    meta_store: MetaStoreConfig = SqliteMetaStoreConfig()
    event_stream: EventStreamConfig = FileEventStreamConfig()
    alias_broadcast: AliasBroadcastConfig = RayAliasBroadcastConfig()

    # The servers those backends use.
    cassandra: CassandraSettings = CassandraSettings()
    redis: RedisSettings = RedisSettings()
    kafka: KafkaSettings = KafkaSettings()
    ray: RaySettings = RaySettings()

    # Where local state lives: SQLite files, Parquet, service data and logs, the Maven cache.
    state_dir: Path = Path(".ma_ray")
    offline_uri: str = ""
    artifact_uri: str = ""

    # Bearer token for admin writes over HTTP (/v1/admin/...); unset: admin writes are refused.
    admin_token: SecretStr | None = None

    # Services named here are never started by `ma-ray services up`, even on loopback.
    external_services: Annotated[list[ServiceName], NoDecode] = []
    # The niceness `ma-ray services up` starts its servers at (at least; 0 leaves the caller's): Ray runs its
    # workers, Serve's replicas among them, at 15, so servers beside them at 0 would take the cores first.
    services_niceness: int = Field(default=15, ge=0, le=19)

    # Tests only: fault injection (a worker killed, a preemption simulated) handed to the job controller beside a
    # spec is refused unless this is on; a spec file never names it (ma_ray.jobs.fault_hooks).
    test_hooks: bool = False

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, data: Any) -> Any:
        if isinstance(data, dict) and "external_services" in data:
            data = {**data, "external_services": split_csv(data["external_services"])}
        return data

    @model_validator(mode="after")
    def _derive_uris(self) -> Settings:
        if not self.offline_uri:
            self.offline_uri = str((self.state_dir / "offline").absolute())
        if not self.artifact_uri:
            self.artifact_uri = str((self.state_dir / "artifacts").absolute())
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        reads: list[Callable[[], Mapping[str, Any]]] = [init_settings, GroupedEnvSource(settings_cls)]
        reads.append(partial(flat_env_values, ENV_PREFIX))  # below the grouped spelling of the same setting
        path = _yaml_path.get() or os.environ.get(CONFIG_FILE_ENV)
        if path:
            reads.append(YamlConfigSettingsSource(settings_cls, _check_yaml(Path(path))))
        return tuple(NestedSource(settings_cls, read) for read in reads)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> Settings:
        """Settings from a YAML file; env vars still apply on top of the file, keyword overrides on top of both."""
        token = _yaml_path.set(Path(path))
        try:
            return load_settings(**overrides)
        finally:
            _yaml_path.reset(token)

    def replaced(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (flat or grouped names) validated, and nothing re-read from the environment."""
        data = self.model_dump()
        for group, values in nest_flat_names(changes).items():
            merge = isinstance(values, dict) and isinstance(data.get(group), dict)
            data[group] = {**data[group], **values} if merge else values
        try:
            return type(self).model_validate(data)
        except ValidationError as error:
            raise SettingsError(_describe(error)) from None

    # Derived endpoints, used by the service launcher and the clients.
    @property
    def services_dir(self) -> Path:
        return self.state_dir.absolute() / "services"

    @property
    def cache_dir(self) -> Path:
        return self.state_dir.absolute() / "cache"

    def service_host(self, name: ServiceName) -> str:
        if name == "redis":
            return self.redis.host_port[0]
        if name == "cassandra":
            return self.cassandra.hosts[0]
        return self.kafka.host_port[0]

    def is_managed(self, name: ServiceName) -> bool:
        """True when `ma-ray services up` should start this service itself (a loopback host, not external)."""
        return name not in self.external_services and is_loopback(self.service_host(name))


def env_names() -> set[str]:
    """Every ``MA_RAY_*`` environment variable a setting is read from, flat spelling."""
    top = {name for name in Settings.model_fields if name not in FLAT_NAMES and not _is_group(name)}
    return {ENV_PREFIX + name.upper() for name in top | set(FLAT_NAMES)}


def _is_group(name: str) -> bool:
    from ma_ray.config.flat_names import SERVERS

    return name in SERVERS


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        path = settings_path(item["loc"])
        given = item.get("input")
        if len(path) == 1 and isinstance(given, dict) and "type" in given:
            given = given["type"]  # a backend's type: the value the user wrote
        lines.append(f"  {'.'.join(path) or 'settings'} ({flat_env_name(path, ENV_PREFIX)}={given!r}): {item['msg']}")
    return "invalid ma-ray settings:\n" + "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one `SettingsError` that names every bad field."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
