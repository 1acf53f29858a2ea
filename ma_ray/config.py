"""Settings: the one place that picks every backend and its endpoints.

Values come, highest priority first, from keyword arguments, ``MA_RAY_*`` environment variables, a YAML file
(``MA_RAY_CONFIG_FILE`` or ``Settings.from_yaml(path)``) and the defaults below, which are the embedded
backends: a laptop needs no server to run the main job.
"""

from __future__ import annotations

import ipaddress
import os
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "MA_RAY_"
CONFIG_FILE_ENV = "MA_RAY_CONFIG_FILE"

_yaml_path: ContextVar[Path | None] = ContextVar("ma_ray_settings_yaml", default=None)

Port = Annotated[int, Field(ge=1, le=65535)]


class StoreBackend(StrEnum):
    """Where a store lives (the online store, Gallery, the feature registry and job records): an embedded SQLite
    file, or Cassandra. Each store's setting picks its own; `BACKENDS` maps each to its class."""

    SQLITE = "sqlite"
    CASSANDRA = "cassandra"


class EventStreamKind(StrEnum):
    FILE = "file"
    KAFKA = "kafka"


class BroadcastKind(StrEnum):
    RAY = "ray"
    REDIS = "redis"


ServiceName = Literal["redis", "cassandra", "kafka"]
ConsistencyName = Literal["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL"]


class SettingsError(ValueError):
    """A bad setting: the message names each bad field, its env var, and what is accepted."""


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads settings from the YAML file named by ``MA_RAY_CONFIG_FILE`` (lowest priority above defaults)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data = _read_yaml(path) if path else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SettingsError(f"settings file {path} does not exist (set {CONFIG_FILE_ENV} to a readable YAML file)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path} must hold a mapping of field: value, not {type(data).__name__}")
    return {str(k).lower(): v for k, v in data.items()}


class Settings(BaseSettings):
    """Every backend choice and endpoint of ma-ray. Build with ``load_settings()`` for friendly errors."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # Backends: embedded defaults, production values in comments.
    online_store: StoreBackend = StoreBackend.SQLITE
    gallery_store: StoreBackend = StoreBackend.SQLITE
    meta_store: StoreBackend = StoreBackend.SQLITE
    event_stream: EventStreamKind = EventStreamKind.FILE
    alias_broadcast: BroadcastKind = BroadcastKind.RAY

    # Where local state lives: SQLite files, Parquet, service data and logs, the Maven cache.
    state_dir: Path = Path(".ma_ray")
    offline_uri: str = ""
    artifact_uri: str = ""

    # Redis (L2 cache, alias broadcast).
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Online store caches (the seed's tuning table: L1 100 ms / 10,000 entries, Redis 300 s).
    l1_cache_ttl_s: float = Field(default=0.1, gt=0, le=3600)
    l1_cache_max_entries: int = Field(default=10_000, ge=1)
    redis_cache_ttl_s: int = Field(default=300, ge=1)
    # The seed's serving request timeout: after it, feature lookups answer with defaults.
    feature_timeout_s: float = Field(default=0.1, gt=0, le=60)

    # Cassandra (online store primary, Gallery metadata).
    cassandra_hosts: Annotated[list[str], NoDecode] = ["127.0.0.1"]
    cassandra_port: Port = 9042
    cassandra_storage_port: Port = 7010
    cassandra_local_dc: str = "datacenter1"
    cassandra_keyspace: str = "ma_ray"
    cassandra_read_consistency: ConsistencyName = "LOCAL_QUORUM"
    cassandra_pool_size: int = Field(default=50, ge=1, le=1024)
    cassandra_request_timeout_s: float = Field(default=0.1, gt=0, le=120)
    cassandra_heap_mb: int = Field(default=1024, ge=256, le=65536)

    # Kafka (event stream).
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_controller_port: Port = 9093
    kafka_heap_mb: int = Field(default=512, ge=128, le=65536)

    # Ray: empty means a local ray.init(); "auto" or ray://host:10001 for a cluster.
    ray_address: str = ""
    ray_num_cpus: int | None = Field(default=None, ge=1)
    ray_object_store_mb: int = Field(default=512, ge=75)
    ray_dashboard: bool = Field(
        default=True, description="a local Ray runs its dashboard, which also serves the job-submission API"
    )

    # Bearer token for admin writes over HTTP (/v1/admin/...); unset: admin writes are refused.
    admin_token: SecretStr | None = None

    # Services named here are never started by `ma-ray services up`, even on loopback.
    external_services: Annotated[list[ServiceName], NoDecode] = []

    # Tests only: a job spec's `faults:` (a worker killed, a preemption simulated) is refused unless this is on.
    test_hooks: bool = False

    @field_validator("cassandra_hosts", "external_services", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix:// (e.g. redis://127.0.0.1:6379/0)")
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"'{server}' is not host:port; use e.g. 127.0.0.1:9092 (comma-separated)")
        return value

    @model_validator(mode="after")
    def _derive_uris(self) -> Settings:
        if not self.offline_uri:
            self.offline_uri = str((self.state_dir / "offline").absolute())
        if not self.artifact_uri:
            self.artifact_uri = str((self.state_dir / "artifacts").absolute())
        if not self.cassandra_hosts:
            raise ValueError("cassandra_hosts must name at least one host")
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
        path = _yaml_path.get() or (Path(os.environ[CONFIG_FILE_ENV]) if os.environ.get(CONFIG_FILE_ENV) else None)
        return init_settings, env_settings, _YamlFileSource(settings_cls, path)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> Settings:
        """Settings from a YAML file; env vars still apply on top of the file, keyword overrides on top of both."""
        token = _yaml_path.set(Path(path))
        try:
            return load_settings(**overrides)
        finally:
            _yaml_path.reset(token)

    # Derived endpoints, used by the service launcher and the clients.
    @property
    def redis_host_port(self) -> tuple[str, int]:
        from urllib.parse import urlparse

        parsed = urlparse(self.redis_url)
        return parsed.hostname or "127.0.0.1", parsed.port or 6379

    @property
    def kafka_host_port(self) -> tuple[str, int]:
        host, _, port = self.kafka_bootstrap.split(",")[0].strip().rpartition(":")
        return host, int(port)

    @property
    def services_dir(self) -> Path:
        return self.state_dir.absolute() / "services"

    @property
    def cache_dir(self) -> Path:
        return self.state_dir.absolute() / "cache"

    def service_host(self, name: ServiceName) -> str:
        if name == "redis":
            return self.redis_host_port[0]
        if name == "cassandra":
            return self.cassandra_hosts[0]
        return self.kafka_host_port[0]

    def is_managed(self, name: ServiceName) -> bool:
        """True when `ma-ray services up` should start this service itself (a loopback host, not external)."""
        return name not in self.external_services and is_loopback(self.service_host(name))


# role -> backend kind -> "module:Class". The one place a backend is chosen; modules load lazily, so the
# embedded defaults never import a server's driver.
BACKENDS: dict[str, dict[str, str]] = {
    "gallery_store": {
        "sqlite": "ma_ray.gallery.store.sqlite:SqliteGalleryStore",
        "cassandra": "ma_ray.gallery.store.cassandra:CassandraGalleryStore",
    },
    "online_store": {
        "sqlite": "ma_ray.palette.online.sqlite:SqliteOnlineStore",
        "cassandra": "ma_ray.palette.online.cassandra:CassandraOnlineStore",
    },
    "meta_store": {
        "sqlite": "ma_ray.palette.meta_store.sqlite:SqliteMetaStore",
        "cassandra": "ma_ray.palette.meta_store.cassandra:CassandraMetaStore",
    },
    # chosen by the online store's kind: stream lag state lives beside the online values it qualifies
    "stream_health": {
        "sqlite": "ma_ray.palette.streaming.health:FileHealthBoard",
        "cassandra": "ma_ray.palette.streaming.redis_health:RedisHealthBoard",
    },
}


def backend_class(role: str, kind: str) -> type[Any]:
    """The class that implements ``role`` with backend ``kind`` (imported on first use)."""
    import importlib

    try:
        target = BACKENDS[role][kind]
    except KeyError:
        choices = ", ".join(BACKENDS.get(role, {})) or "none"
        raise SettingsError(f"no {role} backend named '{kind}' (choose from: {choices})") from None
    module, _, name = target.partition(":")
    cls: type[Any] = getattr(importlib.import_module(module), name)
    return cls


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
        field = ".".join(str(part) for part in item["loc"]) or "settings"
        env = ENV_PREFIX + field.split(".")[0].upper()
        given = item.get("input")
        lines.append(f"  {field} ({env}={given!r}): {item['msg']}")
    return "invalid ma-ray settings:\n" + "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one `SettingsError` that names every bad field."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
