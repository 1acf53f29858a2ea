"""`ma-ray services` against the real servers: health, idempotence, clean stops and every failure path."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ma_ray.config import Settings, load_settings
from ma_ray.services import ServiceError, ServiceLauncher
from ma_ray.services.kafka_server import KafkaServer
from ma_ray.services.maven import require_java, runtime_classpath
from ma_ray.services.process import port_in_use
from ma_ray.services.redis_server import RedisServer
from tests.ports import free_port


def test_shared_services_are_healthy(services: Settings) -> None:
    statuses = ServiceLauncher(services).status()
    assert [(s.name, s.state) for s in statuses] == [
        ("redis", "healthy"),
        ("cassandra", "healthy"),
        ("kafka", "healthy"),
    ]
    details = {s.name: s.detail for s in statuses}
    assert details["cassandra"].startswith("cassandra 5.0")
    assert details["redis"].startswith("redis ")
    assert "brokers 1" in details["kafka"]


def test_up_twice_starts_nothing_new(services: Settings) -> None:
    launcher = ServiceLauncher(services)
    before = {s.name: s.pid for s in launcher.status()}
    after = {s.name: s.pid for s in launcher.up()}
    assert before == after and all(before.values())


def test_private_redis_lifecycle_leaves_nothing_running(tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(state_dir=tmp_path, redis_url=f"redis://127.0.0.1:{port}/0")
    launcher = ServiceLauncher(settings)
    [status] = launcher.up(("redis",))
    assert status.state == "healthy" and status.pid
    assert port_in_use("127.0.0.1", port)
    assert launcher.down(("redis",)) == ["redis"]
    assert not port_in_use("127.0.0.1", port)
    assert launcher.status(("redis",))[0].state == "stopped"
    assert launcher.down(("redis",)) == []


def test_private_kafka_formats_storage_and_stops_cleanly(tmp_path: Path, service_settings: Settings) -> None:
    broker, controller = free_port(), free_port()
    settings = load_settings(
        state_dir=tmp_path,
        kafka_bootstrap=f"127.0.0.1:{broker}",
        kafka_controller_port=controller,
        kafka_heap_mb=256,
    )
    # Reuse the jars the shared services already fetched instead of copying 50 MB again.
    (tmp_path / "cache").symlink_to(service_settings.cache_dir)
    launcher = ServiceLauncher(settings)
    try:
        [status] = launcher.up(("kafka",))
        assert status.state == "healthy"
        assert (tmp_path / "services" / "kafka" / "data" / "meta.properties").exists()
    finally:
        assert launcher.down(("kafka",)) == ["kafka"]
    assert not port_in_use("127.0.0.1", broker)
    assert not port_in_use("127.0.0.1", controller)


def test_port_taken_by_a_stranger_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = load_settings(state_dir=tmp_path, redis_url=f"redis://127.0.0.1:{port}/0")
        with pytest.raises(ServiceError) as caught:
            ServiceLauncher(settings).up(("redis",))
    message = str(caught.value)
    assert f"port {port}" in message and "MA_RAY_REDIS_URL" in message and "MA_RAY_EXTERNAL_SERVICES" in message


class CrashingRedis(RedisServer):
    """A server whose process dies at start with a message in its log."""

    def prepare(self) -> list[str]:
        return ["sh", "-c", "echo 'FATAL: bad config line 3'; exit 3", "redis-server"]


class SilentRedis(RedisServer):
    """A server that runs but never answers its health check."""

    startup_timeout_s = 2.0

    def prepare(self) -> list[str]:
        return [
            sys.executable,
            "-c",
            "import time; print('starting', flush=True); time.sleep(60)",
            "redis-server",
        ]

    def check(self) -> str:
        raise ConnectionError("connection refused")


def test_service_dying_at_start_shows_its_log(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    launcher = ServiceLauncher(settings, servers={"redis": CrashingRedis(settings)})
    with pytest.raises(ServiceError, match="redis exited during start-up") as caught:
        launcher.up(("redis",))
    assert "FATAL: bad config line 3" in str(caught.value)


def test_service_never_healthy_is_stopped_and_reported(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    server = SilentRedis(settings)
    launcher = ServiceLauncher(settings, servers={"redis": server})
    with pytest.raises(ServiceError, match="did not become healthy within 2s") as caught:
        launcher.up(("redis",))
    assert "connection refused" in str(caught.value) and "starting" in str(caught.value)
    assert launcher.status(("redis",))[0].state == "stopped"


def test_external_services_are_checked_never_started(tmp_path: Path, services: Settings) -> None:
    healthy = load_settings(state_dir=tmp_path, redis_url=services.redis_url, external_services=["redis"])
    [status] = ServiceLauncher(healthy).up(("redis",))
    assert status.state == "external" and status.pid is None and status.detail.startswith("redis ")
    assert ServiceLauncher(healthy).down(("redis",)) == []

    missing = load_settings(
        state_dir=tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0", external_services=["redis"]
    )
    with pytest.raises(ServiceError, match="redis is external"):
        ServiceLauncher(missing).up(("redis",))
    assert ServiceLauncher(missing).status(("redis",))[0].state == "unhealthy"


def test_missing_maven_and_java_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceError, match=r"`mvn` was not found on PATH.*apt-get install maven"):
        runtime_classpath("kafka", tmp_path / "kafka-lib")
    with pytest.raises(ServiceError, match=r"`java` was not found on PATH.*JDK 17"):
        require_java()
    with pytest.raises(ServiceError, match="`java` was not found"):
        KafkaServer(load_settings(state_dir=tmp_path)).prepare()


def test_cli_status_and_bad_setting(services: Settings, ma_ray_cli: str) -> None:
    ok = subprocess.run([ma_ray_cli, "services", "status", "--json"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert '"state": "healthy"' in ok.stdout
    bad = subprocess.run(
        [ma_ray_cli, "services", "status"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MA_RAY_CASSANDRA_PORT": "not-a-port"},
    )
    assert bad.returncode == 2
    assert "cassandra_port (MA_RAY_CASSANDRA_PORT='not-a-port')" in bad.stderr
    assert "Traceback" not in bad.stderr
