"""Fetches a JVM service's jars from Maven Central once, into the project's ignored cache folder."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

from ma_ray.services.errors import ServiceError

_STAMP = ".complete"


def require_tool(tool: str, purpose: str, install_hint: str) -> str:
    """The path of ``tool`` on PATH, or a ServiceError that says what needs it and how to install it."""
    path = shutil.which(tool)
    if path is None:
        raise ServiceError(f"`{tool}` was not found on PATH; it is needed to {purpose}. {install_hint}")
    return path


def require_java() -> str:
    java = require_tool("java", "run Cassandra and Kafka", "Install a JDK 17: apt-get install openjdk-17-jdk-headless")
    version = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    major = _java_major(version)
    if major is not None and major < 17:
        raise ServiceError(f"Java {major} found at {java}; Cassandra 5 and Kafka 4 need Java 17 or newer")
    return java


def _java_major(version_text: str) -> int | None:
    for token in version_text.split():
        token = token.strip('"')
        head = token.split(".")[0]
        if head.isdigit() and "." in token:
            major = int(head)
            return int(token.split(".")[1]) if major == 1 else major
    return None


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
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom_path),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-20:]
        raise ServiceError(f"Maven could not fetch {pom_name} (exit {result.returncode}):\n" + "\n".join(output))
    (staging / _STAMP).write_text(pom_name)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest
