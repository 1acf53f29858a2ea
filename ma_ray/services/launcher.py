"""`ma-ray services up|down|status`: start, health-check and stop the real servers the production backends use.

A service whose settings point at a non-loopback host (or that is listed in ``MA_RAY_EXTERNAL_SERVICES``) is
external: it is health-checked, never started or stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ma_ray.config import ServiceName, Settings
from ma_ray.services.cassandra_server import CassandraServer
from ma_ray.services.errors import ServiceError
from ma_ray.services.kafka_server import KafkaServer
from ma_ray.services.process import TrackedProcess, port_in_use, tail
from ma_ray.services.redis_server import RedisServer

ALL_SERVICES: tuple[ServiceName, ...] = ("redis", "cassandra", "kafka")


class LocalServer(Protocol):
    """What the launcher needs from one server kind."""

    name: ServiceName
    marker: str
    startup_timeout_s: float

    def endpoints(self) -> list[tuple[str, int, str]]:
        """(host, port, the setting that moves it) for every port the server binds."""

    def prepare(self) -> list[str]:
        """Fetch binaries, write config, and return the command that runs the server in the foreground."""

    def env(self) -> dict[str, str]: ...

    def timer_slack_ns(self) -> int | None:
        """The timer slack the server's threads start with (`process.timer_slack`); None: the kernel's default."""

    def check(self) -> str:
        """A real request to the server; returns a one-line description, raises when not healthy."""

    def port_holder(self, host: str, port: int) -> str:
        """A sentence naming who holds host:port when this kind can tell (a distro's packaged service), else ""."""


@dataclass
class ServiceStatus:
    name: str
    state: str  # healthy | unhealthy | stopped | external
    endpoint: str
    pid: int | None = None
    detail: str = ""
    log: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_servers(settings: Settings) -> dict[ServiceName, LocalServer]:
    return {
        "redis": RedisServer(settings),
        "cassandra": CassandraServer(settings),
        "kafka": KafkaServer(settings),
    }


class ServiceLauncher:
    """Starts, checks and stops the services; `up` is idempotent and `down` stops only what it started."""

    def __init__(self, settings: Settings, servers: dict[ServiceName, LocalServer] | None = None) -> None:
        self.settings = settings
        self.servers = servers or build_servers(settings)

    def _process(self, name: ServiceName) -> TrackedProcess:
        home = self.settings.services_dir / name
        return TrackedProcess(home / "pid", home / f"{name}.log", self.servers[name].marker)

    def _endpoint(self, name: ServiceName) -> str:
        host, port, _ = self.servers[name].endpoints()[0]
        return f"{host}:{port}"

    def status(self, names: tuple[ServiceName, ...] = ALL_SERVICES) -> list[ServiceStatus]:
        return [self._status_of(name) for name in names]

    def _status_of(self, name: ServiceName) -> ServiceStatus:
        server, process = self.servers[name], self._process(name)
        managed = self.settings.is_managed(name)
        pid = process.pid() if managed else None
        state = "external" if not managed else ("stopped" if pid is None else "unhealthy")
        log = str(process.log_file) if managed else ""
        if managed and pid is None:
            return ServiceStatus(name, state, self._endpoint(name), log=log)
        try:
            detail = server.check()
        except Exception as error:  # any client error means "not healthy"; the message is shown
            return ServiceStatus(name, "unhealthy", self._endpoint(name), pid, _one_line(error), log)
        return ServiceStatus(name, "healthy" if managed else state, self._endpoint(name), pid, detail, log)

    def up(self, names: tuple[ServiceName, ...] = ALL_SERVICES) -> list[ServiceStatus]:
        """Start every named managed service that is not running, then wait until each answers a real request.
        Raises ServiceError naming the first service that failed, with the tail of its log; a failure part-way
        first stops the services this call started (never ones that were running before it)."""
        started: list[ServiceName] = []
        try:
            for name in names:
                if self._start(name):
                    started.append(name)
            return [self._ready(name) for name in names]
        except ServiceError as error:
            raise ServiceError(f"{error}{self._stop_started(started)}") from None
        except BaseException:  # Ctrl-C or a bug: still leave nothing half-started behind
            self._stop_started(started)
            raise

    def _ready(self, name: ServiceName) -> ServiceStatus:
        if self.settings.is_managed(name):
            self._wait_healthy(name)
        else:
            self._check_external(name)
        return self._status_of(name)

    def _stop_started(self, started: list[ServiceName]) -> str:
        """Stops what this `up` started, newest first; returns the note for the error ("" if none was running)."""
        stopped = [name for name in reversed(started) if self._process(name).stop()]
        if not stopped:
            return ""
        return f"\n`services up` stopped what it had started before the failure: {', '.join(stopped)}."

    def _start(self, name: ServiceName) -> bool:
        if not self.settings.is_managed(name) or self._process(name).alive():
            return False
        server = self.servers[name]
        for host, port, setting in server.endpoints():
            if port_in_use(host, port):
                holder = server.port_holder(host, port)
                raise ServiceError(
                    f"{name}: port {port} on {host} is already taken by a process ma-ray did not start. "
                    + (f"{holder} " if holder else "")
                    + f"Stop that process, move {name} with {setting}, or add '{name}' to "
                    f"MA_RAY_EXTERNAL_SERVICES to use the server that is listening there."
                )
        command = server.prepare()
        cwd, slack = self.settings.services_dir / name, server.timer_slack_ns()
        niceness = self.settings.services_niceness
        self._process(name).start(command, cwd=cwd, env=server.env(), timer_slack_ns=slack, niceness=niceness)
        return True

    def _wait_healthy(self, name: ServiceName) -> None:
        server, process = self.servers[name], self._process(name)
        deadline = time.monotonic() + server.startup_timeout_s
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if not process.alive():
                raise ServiceError(
                    f"{name} exited during start-up. Last lines of {process.log_file}:\n{tail(process.log_file)}"
                )
            try:
                server.check()
                return
            except Exception as error:  # not up yet: keep polling until the deadline
                last_error = _one_line(error)
            time.sleep(1.0)
        process.stop()
        raise ServiceError(
            f"{name} did not become healthy within {server.startup_timeout_s:.0f}s ({last_error}); it was stopped. "
            f"Last lines of {process.log_file}:\n{tail(process.log_file)}"
        )

    def _check_external(self, name: ServiceName) -> None:
        try:
            self.servers[name].check()
        except Exception as error:  # an external server must already be healthy
            raise ServiceError(
                f"{name} is external ({self._endpoint(name)}) and did not answer: {_one_line(error)}. "
                "Check the MA_RAY_* setting that points at it."
            ) from None

    def down(self, names: tuple[ServiceName, ...] = ALL_SERVICES) -> list[str]:
        """Stop the named services that ma-ray started (by pid file); returns the names it stopped."""
        return [name for name in reversed(names) if self.settings.is_managed(name) and self._process(name).stop()]


def _one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    return text if len(text) < 300 else text[:297] + "..."
