"""`ma-ray services up` on a fresh machine: Debian's own redis-server service, the JDK check, Maven's first
download. All without a host: commands go to a recording runner, version texts are real `java -version` outputs."""

from __future__ import annotations

import pytest

from ma_ray.services.errors import ServiceError
from ma_ray.services.maven import (
    CASSANDRA_JAVA,
    KAFKA_JAVA,
    MavenProgress,
    _java_major,
    check_java,
    maven_failure_lines,
)
from ma_ray.services.packaged_service import InitSystem, free_command, stop_and_disable
from ma_ray.services.redis_server import packaged_redis_note

pytestmark = pytest.mark.unit


class Host:
    """Records the commands run and answers them with the given exit statuses, in order (then 0)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.ran: list[str] = []

    def __call__(self, command: list[str]) -> int:
        self.ran.append(" ".join(command))
        return self.statuses.pop(0) if self.statuses else 0


def test_systemd_service_running_after_install_is_stopped_and_disabled() -> None:
    host = Host(0)  # is-active: running
    line = stop_and_disable("redis-server", "systemd", host)
    assert host.ran == ["systemctl is-active --quiet redis-server", "systemctl disable --now redis-server"]
    assert line.startswith("Debian's redis-server package installed its own service: stopped it and disabled it")
    assert "`systemctl disable --now redis-server`" in line and "\n" not in line


def test_sysv_service_not_running_is_still_disabled_at_boot() -> None:
    host = Host(3)  # `service redis-server status` exits 3 when it is not running
    line = stop_and_disable("redis-server", "sysv", host)
    assert host.ran == ["service redis-server status", "service redis-server stop", "update-rc.d redis-server disable"]
    assert "it was not running; disabled it at boot" in line
    assert "`service redis-server stop` and `update-rc.d redis-server disable`" in line


def test_a_failed_stop_says_which_command_and_what_to_run() -> None:
    line = stop_and_disable("redis-server", "sysv", Host(0, 1, 0))  # running; `stop` fails (not root)
    assert "`service redis-server stop` exited 1" in line
    assert "Run `sudo service redis-server stop && sudo update-rc.d redis-server disable`" in line


def test_no_init_system_runs_nothing() -> None:
    host = Host()
    assert "nothing to stop" in stop_and_disable("redis-server", "none", host)
    assert host.ran == []


@pytest.mark.parametrize(
    ("init", "command"),
    [
        ("systemd", "sudo systemctl disable --now redis-server"),
        ("sysv", "sudo service redis-server stop && sudo update-rc.d redis-server disable"),
        ("none", ""),
    ],
)
def test_free_command_per_init_system(init: InitSystem, command: str) -> None:
    assert free_command("redis-server", init) == command


def test_port_taken_by_debians_redis_names_it_and_the_command() -> None:
    debian = {"redis_version": "7.0.15", "config_file": "/etc/redis/redis.conf", "process_id": 4675}
    note = packaged_redis_note(debian, "systemd")
    assert "Debian's packaged redis-server service (pid 4675, /etc/redis/redis.conf)" in note
    assert "`sudo systemctl disable --now redis-server`" in note
    assert "`sudo kill 4675`" in packaged_redis_note(debian, "none")


@pytest.mark.parametrize("info", [None, {"redis_version": "7.0.15", "config_file": ""}, {}])
def test_other_port_holders_get_no_debian_note(info: dict | None) -> None:
    assert packaged_redis_note(info, "sysv") == ""


JAVA_8 = """openjdk version "1.8.0_392"
OpenJDK Runtime Environment (build 1.8.0_392-8u392-ga-1~deb12u1-b08)
OpenJDK 64-Bit Server VM (build 25.392-b08, mixed mode)"""
JAVA_11 = """openjdk version "11.0.22" 2024-01-16
OpenJDK Runtime Environment (build 11.0.22+7-post-Debian-1deb11u1)
OpenJDK 64-Bit Server VM (build 11.0.22+7-post-Debian-1deb11u1, mixed mode, sharing)"""
JAVA_17 = """Picked up JAVA_TOOL_OPTIONS: -Dfile.encoding=UTF-8
openjdk version "17.0.15" 2025-04-15
OpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)
OpenJDK 64-Bit Server VM (build 17.0.15+6-Debian-1deb12u1, mixed mode, sharing)"""
JAVA_21 = """openjdk version "21.0.2" 2024-01-16
OpenJDK Runtime Environment (build 21.0.2+13-Debian-2)
OpenJDK 64-Bit Server VM (build 21.0.2+13-Debian-2, mixed mode, sharing)"""
JAVA_21_GA = """openjdk version "21" 2023-09-19
OpenJDK Runtime Environment (build 21+35-2513)"""
ORACLE_8 = 'java version "1.8.0_391"\nJava(TM) SE Runtime Environment (build 1.8.0_391-b13)'


@pytest.mark.parametrize(
    ("text", "major"),
    [(JAVA_8, 8), (ORACLE_8, 8), (JAVA_11, 11), (JAVA_17, 17), (JAVA_21, 21), (JAVA_21_GA, 21), ("bash: java", None)],
)
def test_java_major_of_real_version_outputs(text: str, major: int | None) -> None:
    assert _java_major(text) == major


@pytest.mark.parametrize("text", [JAVA_11, JAVA_17])
def test_cassandra_runs_on_java_11_and_17(text: str) -> None:
    check_java("/usr/bin/java", text, "Cassandra 5.0", CASSANDRA_JAVA, None)


@pytest.mark.parametrize(("text", "major"), [(JAVA_8, 8), (JAVA_21, 21), (JAVA_21_GA, 21)])
def test_cassandra_refuses_other_majors_and_names_the_jdk(text: str, major: int) -> None:
    with pytest.raises(ServiceError) as caught:
        check_java("/usr/bin/java", text, "Cassandra 5.0", CASSANDRA_JAVA, None)
    message = str(caught.value)
    assert f"Cassandra 5.0 needs Java 11 or 17, but /usr/bin/java is Java {major}." in message
    assert "`sudo apt-get install openjdk-17-jdk-headless`" in message
    assert "`export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64`" in message and "PATH" in message


def test_refusal_points_at_a_jdk_17_already_installed() -> None:
    with pytest.raises(ServiceError, match=r"A JDK 17 is installed at /opt/jdk-17: `export JAVA_HOME=/opt/jdk-17`"):
        check_java("/usr/bin/java", JAVA_21, "Cassandra 5.0", CASSANDRA_JAVA, "/opt/jdk-17")


def test_kafka_needs_17_or_newer_and_unreadable_versions_are_refused() -> None:
    check_java("/usr/bin/java", JAVA_21, "Kafka 4", KAFKA_JAVA, None)
    with pytest.raises(ServiceError, match=r"Kafka 4 needs Java 17 or newer, but /usr/bin/java is Java 11\."):
        check_java("/usr/bin/java", JAVA_11, "Kafka 4", KAFKA_JAVA, None)
    with pytest.raises(ServiceError, match="printed 'bash: java' for -version"):
        check_java("/usr/bin/java", "bash: java", "Kafka 4", KAFKA_JAVA, None)


def downloaded(name: str, size: str) -> str:
    return f"[INFO] Downloaded from central: https://repo.maven.apache.org/maven2/org/x/{name} ({size} at 1.2 MB/s)\n"


def test_maven_progress_is_silent_when_nothing_is_downloaded() -> None:
    said: list[str] = []
    progress = MavenProgress("kafka jars", said.append, clock=lambda: 0.0)
    for line in ["[INFO] Scanning for projects...", "[INFO] Copying kafka_2.13-4.1.1.jar", "[INFO] BUILD SUCCESS"]:
        progress.feed(line + "\n")
    progress.done()
    assert said == []


def test_maven_progress_heading_heartbeat_and_summary() -> None:
    said: list[str] = []
    now = [100.0]
    progress = MavenProgress("cassandra jars", said.append, clock=lambda: now[0], every_s=5.0)
    progress.feed("[INFO] Downloading from central: https://repo.maven.apache.org/maven2/org/x/a.pom\n")
    progress.feed(downloaded("a.pom", "2.5 kB"))
    now[0] = 102.0
    progress.feed(downloaded("b.jar", "500 kB"))  # within 5 s of the heading: no line
    now[0] = 106.0
    progress.feed(downloaded("cassandra-all-5.0.9.jar", "9.5 MB"))
    now[0] = 130.0
    progress.done()
    assert said == [
        "Fetching cassandra jars from Maven Central (first run only, a few minutes)...",
        "  3 files, 10.0 MB downloaded, latest cassandra-all-5.0.9.jar",
        "Fetched cassandra jars: 3 files, 10.0 MB downloaded in 30s",
    ]


def test_maven_failure_shows_its_error_lines_else_its_last_lines() -> None:
    lines = ["[INFO] Scanning", *[f"[INFO] line {i}" for i in range(30)], "[ERROR] Failed to execute goal", "[ERROR] "]
    assert maven_failure_lines(lines) == ["[ERROR] Failed to execute goal", "[ERROR] "]
    plain = [f"line {i}" for i in range(30)]
    assert maven_failure_lines(plain) == plain[-20:]
