"""The servers ma-ray talks to, one settings group each: every Cassandra-backed store shares the ``cassandra``
group, Redis-backed ones the ``redis`` group; ``ray`` says which Ray to join or start."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeInt, field_validator

from ma_ray.config.backends import SettingsGroup

Port = Annotated[int, Field(ge=1, le=65535)]
ConsistencyName = Literal["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL"]


def split_csv(value: Any) -> Any:
    """``a, b`` (an environment variable) as ``["a", "b"]``; lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class CassandraSettings(SettingsGroup):
    """The Cassandra ring behind the production online store, Gallery and the meta store."""

    hosts: list[str] = Field(default=["127.0.0.1"], min_length=1)
    port: Port = 9042
    storage_port: Port = 7010
    local_dc: str = "datacenter1"
    keyspace: str = "ma_ray"
    # The seed's tuning table: LOCAL_QUORUM reads, 50 connections, 100 ms requests.
    read_consistency: ConsistencyName = "LOCAL_QUORUM"
    pool_size: int = Field(default=50, ge=1, le=1024)
    request_timeout_s: float = Field(default=0.1, gt=0, le=120)
    # the node `ma-ray services up` starts; its threads' timer slack (0: the kernel's), `CassandraServer`
    heap_mb: int = Field(default=1024, ge=256, le=65536)
    timer_slack_us: int = Field(default=1000, ge=0, le=100_000)

    @field_validator("hosts", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        hosts = split_csv(value)
        if hosts == []:
            raise ValueError("must name at least one host (e.g. 127.0.0.1 or cassandra-0.db.svc,cassandra-1.db.svc)")
        return hosts


class RedisSettings(SettingsGroup):
    """Redis: the online store's L2 cache, the stream health board and the alias broadcast in production."""

    url: str = "redis://127.0.0.1:6379/0"

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix:// (e.g. redis://127.0.0.1:6379/0)")
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        from urllib.parse import urlparse

        parsed = urlparse(self.url)
        return parsed.hostname or "127.0.0.1", parsed.port or 6379


class KafkaSettings(SettingsGroup):
    """The Kafka brokers of the production event stream."""

    bootstrap: str = "127.0.0.1:9092"
    # the broker `ma-ray services up` starts
    controller_port: Port = 9093
    heap_mb: int = Field(default=512, ge=128, le=65536)

    @field_validator("bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"'{server}' is not host:port; use e.g. 127.0.0.1:9092 (comma-separated)")
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.bootstrap.split(",")[0].strip().rpartition(":")
        return host, int(port)


class RaySettings(SettingsGroup):
    """Which Ray: empty ``address`` starts a local one of this size; ``auto`` or ``ray://host:10001`` joins one."""

    address: str = ""
    num_cpus: Annotated[NonNegativeInt, Field(ge=1)] | None = None
    object_store_mb: int = Field(default=512, ge=75)
    dashboard: bool = Field(
        default=True, description="a local Ray runs its dashboard, which also serves the job-submission API"
    )
