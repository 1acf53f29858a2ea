"""Redis from Debian's `redis-server` package: the online store's L2 cache and the alias broadcast bus."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ma_ray.config import ServiceName, Settings
from ma_ray.connections import redis_client
from ma_ray.services.debian import install_debian_packages
from ma_ray.services.errors import ServiceError
from ma_ray.services.packaged_service import InitSystem, detect_init, free_command, stop_and_disable
from ma_ray.services.process import say

PACKAGED_UNIT = "redis-server"


class RedisServer:
    """A loopback Redis without persistence (tests and caches need none), capped so it never eats the box."""

    name: ServiceName = "redis"
    startup_timeout_s = 30.0
    maxmemory_mb = 512

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.services_dir / "redis"
        self.marker = "redis-server"

    def endpoints(self) -> list[tuple[str, int, str]]:
        host, port = self.settings.redis.host_port
        return [(host, port, "MA_RAY_REDIS_URL")]

    def prepare(self) -> list[str]:
        binary = _redis_binary()
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        host, port = self.settings.redis.host_port
        return [
            binary,
            "--bind",
            host,
            "--port",
            str(port),
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--maxmemory",
            f"{self.maxmemory_mb}mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ]

    def env(self) -> dict[str, str]:
        return {}

    def timer_slack_ns(self) -> int | None:
        return None

    def check(self) -> str:
        client = redis_client(self.settings, timeout_s=1.0)
        try:
            client.ping()
            return "redis " + str(client.info("server")["redis_version"])
        finally:
            client.close()

    def port_holder(self, host: str, port: int) -> str:
        """Names Debian's packaged redis-server service when it is what holds host:port, with the command that
        frees the port; empty for any other holder."""
        return packaged_redis_note(_server_info(host, port), detect_init(PACKAGED_UNIT))


def _server_info(host: str, port: int) -> dict[str, Any] | None:
    import redis

    client = redis.Redis(host=host, port=port, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        return dict(client.info("server"))
    except Exception:  # not a Redis, or one that wants a password: nothing to say about it
        return None
    finally:
        client.close()


def packaged_redis_note(info: dict[str, Any] | None, init: InitSystem) -> str:
    """A sentence for the port-taken error when `INFO server` shows Debian's packaged service (its config file
    is /etc/redis/redis.conf; ma-ray's own redis runs with no config file)."""
    info = info or {}
    config = str(info.get("config_file", ""))
    if not config.startswith("/etc/redis/"):
        return ""
    pid = info.get("process_id", "?")
    command = free_command(PACKAGED_UNIT, init) or f"sudo kill {pid}"
    return f"It is Debian's packaged redis-server service (pid {pid}, {config}), not ma-ray's; free it: `{command}`."


def _redis_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found:
        return found
    instead = ", or point MA_RAY_REDIS_URL at an existing Redis and add redis to MA_RAY_EXTERNAL_SERVICES"
    install_debian_packages("redis-server", instead=instead)
    found = shutil.which("redis-server")
    if found is None:
        raise ServiceError("redis-server is still missing after apt-get install; install Debian's redis-server")
    # The package starts its own service on 6379 when the host's init system lets it: ma-ray runs its own.
    say(stop_and_disable(PACKAGED_UNIT, detect_init(PACKAGED_UNIT)))
    return found
