"""`ma-ray services` against the real servers: health, idempotence, clean stops and every failure path."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ma_ray.config import Settings, load_settings
from ma_ray.services import ServiceError, ServiceLauncher
from ma_ray.services.kafka_server import KafkaServer
from ma_ray.services.maven import KAFKA_JAVA, require_java, runtime_classpath
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


def test_cassandra_threads_run_with_the_configured_timer_slack(services: Settings) -> None:
    if not services.is_managed("cassandra"):
        pytest.skip("Cassandra is external: ma-ray did not start it")
    pid = {s.name: s.pid for s in ServiceLauncher(services).status()}["cassandra"]
    slacks = {int(Path(f"/proc/{tid.name}/timerslack_ns").read_text()) for tid in Path(f"/proc/{pid}/task").iterdir()}
    assert slacks == {services.cassandra.timer_slack_us * 1000}, "restart the services: `ma-ray services down`"


def test_every_service_runs_at_the_configured_niceness(services: Settings) -> None:
    """At least Ray's worker niceness: a server at 0 beside the replicas would take the cores first."""
    floor = max(os.getpriority(os.PRIO_PROCESS, 0), services.services_niceness)
    for status in ServiceLauncher(services).status():
        if status.state == "external" or status.pid is None:
            continue
        stats = [Path(f"/proc/{task.name}/stat") for task in Path(f"/proc/{status.pid}/task").iterdir()]
        nicenesses = {int(stat.read_text().rpartition(")")[2].split()[16]) for stat in stats}
        assert nicenesses == {floor}, f"{status.name}: restart the services: `ma-ray services down`"


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
    healthy = load_settings(state_dir=tmp_path, redis_url=services.redis.url, external_services=["redis"])
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
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ServiceError, match=r"`mvn` was not found on PATH.*apt-get install maven"):
        runtime_classpath("kafka", tmp_path / "kafka-lib")
    with pytest.raises(ServiceError, match=r"`java` was not found on PATH.*JDK 17"):
        require_java("Kafka 4", KAFKA_JAVA)
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
    assert "cassandra.port (MA_RAY_CASSANDRA_PORT='not-a-port')" in bad.stderr
    assert "Traceback" not in bad.stderr


class Sleeper:
    """A fake server definition: a real sleeping process, healthy at once unless told otherwise."""

    startup_timeout_s = 2.0

    def __init__(self, name: str, fail: str = "") -> None:
        self.name, self.fail = name, fail
        self.marker = f"ma-ray-test-{name}-{uuid.uuid4().hex[:8]}"
        self.port = free_port()

    def endpoints(self) -> list[tuple[str, int, str]]:
        return [("127.0.0.1", self.port, "SOME_SETTING")]

    def prepare(self) -> list[str]:
        if self.fail == "prepare":
            raise ServiceError("Maven could not fetch kafka (exit 1)")
        return [sys.executable, "-c", "import time; time.sleep(120)", self.marker]

    def env(self) -> dict[str, str]:
        return {}

    def timer_slack_ns(self) -> int | None:
        return None

    def check(self) -> str:
        if self.fail == "check":
            raise ConnectionError("connection refused")
        return "sleeping"

    def port_holder(self, host: str, port: int) -> str:
        return "It is the test's squatter."


def sleepers(tmp_path: Path, **fail: str) -> ServiceLauncher:
    servers = {name: Sleeper(name, fail.get(name, "")) for name in ("redis", "cassandra", "kafka")}
    return ServiceLauncher(load_settings(state_dir=tmp_path), servers=servers)  # type: ignore[arg-type]


def test_up_failing_part_way_stops_what_it_started(tmp_path: Path) -> None:
    launcher = sleepers(tmp_path, kafka="prepare")
    with pytest.raises(ServiceError) as caught:
        launcher.up()
    message = str(caught.value)
    assert message.startswith("Maven could not fetch kafka")
    assert message.endswith("`services up` stopped what it had started before the failure: cassandra, redis.")
    assert [s.state for s in launcher.status()] == ["stopped", "stopped", "stopped"]


def test_up_failing_part_way_leaves_what_was_already_running(tmp_path: Path) -> None:
    launcher = sleepers(tmp_path, cassandra="check")
    [redis] = launcher.up(("redis",))
    try:
        with pytest.raises(ServiceError, match="cassandra did not become healthy within 2s") as caught:
            launcher.up()
        assert str(caught.value).endswith("stopped what it had started before the failure: kafka.")
        assert [(s.state, s.pid) for s in launcher.status()] == [
            ("healthy", redis.pid),
            ("stopped", None),
            ("stopped", None),
        ]
    finally:
        assert launcher.down() == ["redis"]


def test_port_error_names_the_holder_when_the_server_kind_can_tell(tmp_path: Path) -> None:
    launcher = sleepers(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", launcher.servers["kafka"].endpoints()[0][1]))
        squatter.listen()
        with pytest.raises(ServiceError) as caught:
            launcher.up()
    assert "taken by a process ma-ray did not start. It is the test's squatter. Stop that process" in str(caught.value)
    assert str(caught.value).endswith("stopped what it had started before the failure: cassandra, redis.")


FAKE_MVN = """#!{python}
import sys
out = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("-DoutputDirectory="))
print("[INFO] Scanning for projects...")
if {fail}:
    print("[INFO] BUILD FAILURE")
    print("[ERROR] Failed to execute goal on project ma-ray-kafka: Could not resolve dependencies")
    sys.exit(1)
for name in ("kafka_2.13-4.1.1.jar", "kafka-clients-4.1.1.jar"):
    print("[INFO] Downloaded from central: https://repo.maven.apache.org/maven2/org/" + name + " (6.5 MB at 9 MB/s)")
    open(out + "/" + name, "w").close()
print("[INFO] BUILD SUCCESS")
"""


def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: bool) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "mvn").write_text(FAKE_MVN.format(python=sys.executable, fail=fail))
    (bin_dir / "mvn").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_maven_first_download_shows_progress_then_is_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_mvn(tmp_path, monkeypatch, fail=False)
    lib = runtime_classpath("kafka", tmp_path / "kafka-lib")
    assert (lib / "kafka_2.13-4.1.1.jar").exists()
    err = capsys.readouterr().err
    assert "Fetching kafka jars into" in err and "Fetched kafka jars" in err and "2 files, 13.0 MB downloaded" in err
    runtime_classpath("kafka", tmp_path / "kafka-lib")
    assert capsys.readouterr().err == ""


def test_maven_failure_shows_its_error_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mvn(tmp_path, monkeypatch, fail=True)
    with pytest.raises(ServiceError) as caught:
        runtime_classpath("kafka", tmp_path / "kafka-lib")
    assert str(caught.value) == (
        "Maven could not fetch kafka (exit 1):\n"
        "[ERROR] Failed to execute goal on project ma-ray-kafka: Could not resolve dependencies"
    )
    assert not (tmp_path / "kafka-lib").exists()
