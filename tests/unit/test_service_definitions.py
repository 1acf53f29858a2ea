"""The launch definitions of the real servers, checked without starting them."""

import base64
from pathlib import Path

import pytest

from ma_ray.config import load_settings
from ma_ray.services.cassandra_server import GC_AND_STARTUP_OPTIONS, JVM17_MODULE_OPTIONS, CassandraServer
from ma_ray.services.kafka_server import KafkaServer, kafka_cluster_id
from ma_ray.services.maven import _java_major
from ma_ray.text_table import format_table


def test_cassandra_yaml_is_a_fast_single_loopback_node(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path, cassandra_port=19042, cassandra_storage_port=17010)
    config = CassandraServer(settings).config()
    assert config["native_transport_port"] == 19042
    assert config["storage_port"] == 17010
    assert config["seed_provider"][0]["parameters"][0]["seeds"] == "127.0.0.1:17010"
    assert config["listen_address"] == config["rpc_address"] == "127.0.0.1"
    assert config["num_tokens"] == 1 and config["endpoint_snitch"] == "SimpleSnitch"
    for required in ("partitioner", "commitlog_sync", "commitlog_sync_period"):
        assert required in config


def test_cassandra_jvm_options_cover_java17_and_the_seed() -> None:
    options = " ".join(JVM17_MODULE_OPTIONS + GC_AND_STARTUP_OPTIONS)
    assert "-Djdk.attach.allowAttachSelf=true" in options
    assert "--add-opens java.base/jdk.internal.ref=ALL-UNNAMED" in options
    assert "--add-exports java.base/jdk.internal.misc=ALL-UNNAMED" in options
    assert "-XX:+UseG1GC" in options
    assert "-Dcassandra.skip_wait_for_gossip_to_settle=0" in options


def test_kafka_properties_are_kraft_combined_mode(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path, kafka_bootstrap="127.0.0.1:19092", kafka_controller_port=19093)
    props = KafkaServer(settings).properties()
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["log.dirs"].startswith(str(tmp_path))


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_391"', 8),
        ('openjdk version "21.0.2" 2024-01-16', 21),
        ("nothing useful", None),
    ],
)
def test_java_version_parsing(text: str, major: int | None) -> None:
    assert _java_major(text) == major


def test_text_table_aligns_columns() -> None:
    table = format_table([("redis", 1.23456, None), ("cassandra", 2, "x")], ["name", "value", "note"])
    lines = table.splitlines()
    assert lines[0] == "name       value  note"
    assert lines[2] == "redis      1.235  -"
    assert lines[3] == "cassandra  2      x"


@pytest.mark.unit
def test_a_kafka_cluster_id_never_starts_with_a_dash() -> None:
    """The storage tool reads '-t -abc...' as a missing argument: a fresh Kafka failed to start 1 time in 64."""
    draws = iter([b"\xf8" + bytes(15), b"\x00" * 16])  # the first encodes as '-AAA...'
    cluster_id = kafka_cluster_id(lambda: next(draws))
    assert cluster_id == "AAAAAAAAAAAAAAAAAAAAAA"
    assert base64.urlsafe_b64encode(b"\xf8" + bytes(15)).decode().startswith("-")
    assert all(not kafka_cluster_id().startswith("-") for _ in range(500))
