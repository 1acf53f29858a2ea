"""Fetches a JVM service's jars from Maven Central once, into the project's ignored cache folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Callable, Collection
from importlib import resources
from pathlib import Path

from ma_ray.services.errors import ServiceError
from ma_ray.services.process import say

_STAMP = ".complete"
JDK_INSTALL = "sudo apt-get install openjdk-17-jdk-headless"
DEBIAN_JDK17_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"
# The broker of Kafka 4 needs 17 or newer; Cassandra 5.0 runs on 11 and 17 only (its jvm11/jvm17 options).
KAFKA_JAVA: Collection[int] = range(17, 1000)
CASSANDRA_JAVA: Collection[int] = (11, 17)


def require_tool(tool: str, purpose: str, install_hint: str) -> str:
    """The path of ``tool`` on PATH, or a ServiceError that says what needs it and how to install it."""
    path = shutil.which(tool)
    if path is None:
        raise ServiceError(f"`{tool}` was not found on PATH; it is needed to {purpose}. {install_hint}")
    return path


def require_java(service: str, majors: Collection[int]) -> str:
    """JAVA_HOME's java, else PATH's, when its major version is one ``service`` runs on; else a ServiceError
    naming the JDK to install and how to point ma-ray at it."""
    java = _find_java(service)
    version = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    check_java(java, version, service, majors, _installed_jdk17())
    return java


def _find_java(service: str) -> str:
    home = os.environ.get("JAVA_HOME")
    if not home:
        return require_tool("java", f"run {service}", f"Install a JDK 17: {JDK_INSTALL}")
    java = Path(home) / "bin" / "java"
    if not java.exists():
        raise ServiceError(f"JAVA_HOME={home} has no bin/java; point it at a JDK 17 (`{JDK_INSTALL}`) or unset it.")
    return str(java)


def _installed_jdk17() -> str | None:
    """A JDK 17 home already on this machine (Debian's or another vendor's), to name in the refusal."""
    jvms = Path("/usr/lib/jvm")
    found = sorted(jvms.glob("java-17-openjdk-*/bin/java")) or sorted(jvms.glob("*17*/bin/java"))
    return str(found[0].parent.parent) if found else None


def check_java(java: str, version_text: str, service: str, majors: Collection[int], jdk17: str | None) -> None:
    """Refuses a java whose major (from ``java -version``) is not in ``majors``; the message says which JDK
    to install and that JAVA_HOME or PATH can point at it (``jdk17``: one already installed, if any)."""
    major = _java_major(version_text)
    if major in majors:
        return
    wanted = _describe(majors)
    found = f"is Java {major}" if major is not None else f"printed {version_text.strip()[:120]!r} for -version"
    install = f"A JDK 17 is installed at {jdk17}:" if jdk17 else f"Install a JDK 17 (`{JDK_INSTALL}`), then"
    home = jdk17 or DEBIAN_JDK17_HOME
    raise ServiceError(
        f"{service} needs {wanted}, but {java} {found}. {install} `export JAVA_HOME={home}` "
        "(or put its bin/ first on PATH) and run again."
    )


def _describe(majors: Collection[int]) -> str:
    if isinstance(majors, range):
        return f"Java {majors.start} or newer"
    return "Java " + " or ".join(str(major) for major in sorted(majors))


def _java_major(version_text: str) -> int | None:
    """The major of `java -version` output: "1.8.0_392" is 8, "17.0.15" is 17, a bare "21" (a GA build) is 21."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


class MavenProgress:
    """Turns Maven's transfer lines into a few lines for the person waiting: nothing while it only copies from
    ~/.m2 (already cached), a heading at the first download, then one line every ``every_s`` seconds."""

    _DOWNLOADED = re.compile(r"Downloaded from [^:]+: (\S+) \(([\d.,]+) (B|kB|MB|GB)")
    _UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}

    def __init__(
        self,
        what: str,
        report: Callable[[str], None] = say,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = 5.0,
    ) -> None:
        self.what, self.report, self.clock, self.every_s = what, report, clock, every_s
        self.files, self.bytes = 0, 0.0
        self.started = self.last_report = 0.0

    def feed(self, line: str) -> None:
        found = self._DOWNLOADED.search(line)
        if found is None:
            return
        now = self.clock()
        if self.files == 0:
            self.started = self.last_report = now
            self.report(f"Fetching {self.what} from Maven Central (first run only, a few minutes)...")
        self.files += 1
        self.bytes += float(found.group(2).replace(",", "")) * self._UNITS[found.group(3)]
        if now - self.last_report >= self.every_s:
            self.last_report = now
            self.report(f"  {self._so_far()}, latest {found.group(1).rsplit('/', 1)[-1]}")

    def done(self) -> None:
        if self.files:
            self.report(f"Fetched {self.what}: {self._so_far()} in {self.clock() - self.started:.0f}s")

    def _so_far(self) -> str:
        return f"{self.files} files, {self.bytes / 1e6:.1f} MB downloaded"


def maven_failure_lines(lines: Collection[str], keep: int = 20) -> list[str]:
    """The lines worth showing when Maven fails: its [ERROR] lines when it printed any, else its last lines."""
    errors = [line for line in lines if line.startswith("[ERROR]")]
    return list(errors or lines)[-keep:]


def runtime_classpath(pom_name: str, dest: Path) -> Path:
    """Resolve ``maven/<pom_name>.pom.xml`` and its runtime dependencies into ``dest`` (skipped once complete)."""
    if (dest / _STAMP).exists():
        return dest
    mvn = require_tool("mvn", f"fetch {pom_name} from Maven Central", "Install Maven: apt-get install maven")
    pom = resources.files("ma_ray.services") / "maven" / f"{pom_name}.pom.xml"
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with resources.as_file(pom) as pom_path:
        command = [
            mvn,
            "-B",
            "-f",
            str(pom_path),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]
        returncode, lines = _run_maven(command, MavenProgress(f"{pom_name} jars into {dest}"))
    if returncode != 0:
        output = maven_failure_lines(lines)
        raise ServiceError(f"Maven could not fetch {pom_name} (exit {returncode}):\n" + "\n".join(output))
    (staging / _STAMP).write_text(pom_name)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def _run_maven(command: list[str], progress: MavenProgress) -> tuple[int, deque[str]]:
    """Runs Maven, feeding each output line to ``progress``; returns its exit status and its last lines."""
    lines: deque[str] = deque(maxlen=400)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, errors="replace"
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            progress.feed(line)
    if process.returncode == 0:
        progress.done()
    return process.returncode, lines
