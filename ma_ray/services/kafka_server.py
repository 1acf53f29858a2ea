"""Apache Kafka 4 from Maven Central in KRaft mode: one combined broker + controller JVM on loopback."""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from ma_ray.config import ServiceName, Settings
from ma_ray.connections import kafka_admin
from ma_ray.services.errors import ServiceError
from ma_ray.services.maven import KAFKA_JAVA, require_java, runtime_classpath

KAFKA_VERSION = "4.1.1"

LOG4J2_PROPERTIES = """status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


class KafkaServer:
    """Single-node KRaft Kafka: storage formatted once, replication factors of 1, no rebalance delay."""

    name: ServiceName = "kafka"
    startup_timeout_s = 120.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.services_dir / "kafka"
        self.marker = "-Dma_ray.service=kafka"

    def endpoints(self) -> list[tuple[str, int, str]]:
        host, port = self.settings.kafka.host_port
        return [
            (host, port, "MA_RAY_KAFKA_BOOTSTRAP"),
            (host, self.settings.kafka.controller_port, "MA_RAY_KAFKA_CONTROLLER_PORT"),
        ]

    def properties(self) -> dict[str, str]:
        host, port = self.settings.kafka.host_port
        controller = self.settings.kafka.controller_port
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{controller}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            "num.partitions": "4",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }

    def prepare(self) -> list[str]:
        java = require_java("Kafka 4", KAFKA_JAVA)
        lib = runtime_classpath("kafka", self.settings.cache_dir / f"kafka-{KAFKA_VERSION}")
        conf = self.home / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        server_properties = conf / "server.properties"
        server_properties.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        (conf / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        base = self._jvm(java, lib, conf)
        if not (self.home / "data" / "meta.properties").exists():
            self._format_storage(base, server_properties)
        return [*base, "kafka.Kafka", str(server_properties)]

    def _jvm(self, java: str, lib: Path, conf: Path) -> list[str]:
        heap = self.settings.kafka.heap_mb
        return [
            java,
            self.marker,
            f"-Xms{heap}m",
            f"-Xmx{heap}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={conf / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp",
            f"{lib}/*",
        ]

    def _format_storage(self, base: list[str], server_properties: Path) -> None:
        cluster_id = kafka_cluster_id()
        result = subprocess.run(
            [*base, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(server_properties)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError("formatting Kafka's KRaft storage failed:\n" + (result.stdout + result.stderr)[-3000:])

    def env(self) -> dict[str, str]:
        return {}

    def timer_slack_ns(self) -> int | None:
        return None

    def port_holder(self, host: str, port: int) -> str:
        return ""

    def check(self) -> str:
        metadata = kafka_admin(self.settings).list_topics(timeout=2.0)
        if not metadata.brokers:
            raise ServiceError("Kafka answered with no brokers")
        broker_ids = ",".join(str(b) for b in sorted(metadata.brokers))
        return f"kafka cluster {metadata.cluster_id}, brokers {broker_ids}"


def kafka_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id as Kafka's own ``Uuid.randomUuid()`` makes it: 16 random bytes in URL-safe base64,
    drawn again while it starts with '-', which the storage tool would read as an option (1 start in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
