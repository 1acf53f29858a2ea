"""Apache Cassandra 5.0 from Maven Central, run as a child JVM (`CassandraDaemon`) on loopback.

The JVM options follow Cassandra's own `jvm17-server.options` (module exports/opens, attach-self, the jamm
agent, G1GC); the YAML is the smallest single-node config that starts fast and keeps memory modest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ma_ray.config import ServiceName, Settings
from ma_ray.connections import cassandra_cluster
from ma_ray.services.errors import ServiceError
from ma_ray.services.maven import CASSANDRA_JAVA, require_java, runtime_classpath

CASSANDRA_VERSION = "5.0.9"

# From Cassandra's conf/jvm17-server.options: what Cassandra needs to run on Java 17's module system.
JVM17_MODULE_OPTIONS = [
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports",
    "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports",
    "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports",
    "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports",
    "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports",
    "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports",
    "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports",
    "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports",
    "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens",
    "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens",
    "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.io=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens",
    "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.util=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
]

# The seed's tuning asks for G1GC; the rest trims threads and start-up waits for a single loopback node.
GC_AND_STARTUP_OPTIONS = [
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxGCPauseMillis=300",
    "-XX:+ExitOnOutOfMemoryError",
    "-Xss512k",
    "-Djava.net.preferIPv4Stack=true",
    "-Dcassandra-foreground=yes",
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    "-Dcassandra.ring_delay_ms=100",
    "-Dcassandra.superuser_setup_delay_ms=100",
]

LOGBACK_XML = """<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


class CassandraServer:
    """A single Cassandra node: data under the state folder, heap capped by `cassandra_heap_mb`."""

    name: ServiceName = "cassandra"
    startup_timeout_s = 240.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.services_dir / "cassandra"
        self.marker = "-Dma_ray.service=cassandra"

    def endpoints(self) -> list[tuple[str, int, str]]:
        host = self.settings.cassandra.hosts[0]
        return [
            (host, self.settings.cassandra.port, "MA_RAY_CASSANDRA_PORT"),
            (host, self.settings.cassandra.storage_port, "MA_RAY_CASSANDRA_STORAGE_PORT"),
        ]

    def config(self) -> dict[str, Any]:
        """The cassandra.yaml contents (single node, SimpleSnitch -> datacenter1, small thread pools)."""
        host = self.settings.cassandra.hosts[0]
        storage = self.settings.cassandra.storage_port
        return {
            "cluster_name": "ma-ray",
            "num_tokens": 1,
            "initial_token": "0",
            "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
            "endpoint_snitch": "SimpleSnitch",
            "seed_provider": [
                {
                    "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                    "parameters": [{"seeds": f"{host}:{storage}"}],
                }
            ],
            "listen_address": host,
            "rpc_address": host,
            "storage_port": storage,
            "native_transport_port": self.settings.cassandra.port,
            "start_native_transport": True,
            "commitlog_sync": "periodic",
            "commitlog_sync_period": "10000ms",
            "concurrent_reads": 8,
            "concurrent_writes": 8,
            "concurrent_counter_writes": 4,
            "concurrent_compactors": 1,
            "auto_snapshot": False,
            "key_cache_size": "32MiB",
            "authenticator": "AllowAllAuthenticator",
            "authorizer": "AllowAllAuthorizer",
            "read_request_timeout": "5000ms",
            "batch_size_warn_threshold": "64KiB",
            "unlogged_batch_across_partitions_warn_threshold": 100,
            "write_request_timeout": "5000ms",
        }

    def prepare(self) -> list[str]:
        java = require_java("Cassandra 5.0", CASSANDRA_JAVA)
        lib = runtime_classpath("cassandra", self.settings.cache_dir / f"cassandra-{CASSANDRA_VERSION}")
        conf = self.home / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        for folder in ("logs", "triggers"):
            (self.home / folder).mkdir(parents=True, exist_ok=True)
        (conf / "cassandra.yaml").write_text(yaml.safe_dump(self.config(), sort_keys=False))
        (conf / "logback.xml").write_text(LOGBACK_XML)
        heap = self.settings.cassandra.heap_mb
        return [
            java,
            self.marker,
            f"-Xms{heap}m",
            f"-Xmx{heap}m",
            *GC_AND_STARTUP_OPTIONS,
            *JVM17_MODULE_OPTIONS,
            f"-javaagent:{_jamm_jar(lib)}",
            f"-Dcassandra.config=file://{conf / 'cassandra.yaml'}",
            f"-Dcassandra.storagedir={self.home / 'data'}",
            f"-Dcassandra.logdir={self.home / 'logs'}",
            f"-Dcassandra.triggers_dir={self.home / 'triggers'}",
            f"-Dlogback.configurationFile={conf / 'logback.xml'}",
            "-cp",
            f"{conf}:{lib}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]

    def env(self) -> dict[str, str]:
        return {}

    def timer_slack_ns(self) -> int | None:
        """Cassandra's thread pools spin after each task (parks of 10 us for 10 ms, SEPWorker), which on a small
        box that Ray shares costs a third of a core at a few dozen reads a second; a coarser slack coalesces
        the parks (`cassandra.timer_slack_us`; 0 keeps the kernel's 50 us)."""
        slack_us = self.settings.cassandra.timer_slack_us
        return slack_us * 1000 if slack_us else None

    def port_holder(self, host: str, port: int) -> str:
        return ""

    def check(self) -> str:
        cluster = cassandra_cluster(self.settings, connect_timeout_s=2.0)
        try:
            session = cluster.connect()
            row = session.execute("SELECT release_version FROM system.local").one()
            return f"cassandra {row.release_version}"
        finally:
            cluster.shutdown()


def _jamm_jar(lib: Path) -> Path:
    jars = sorted(lib.glob("jamm-*.jar"))
    if not jars:
        raise ServiceError(f"no jamm agent jar in {lib}; delete that folder so it is fetched again")
    return jars[-1]
