from pathlib import Path

import pytest

from ma_ray.config import (
    BroadcastKind,
    EventStreamKind,
    Settings,
    SettingsError,
    StoreBackend,
    is_loopback,
    load_settings,
)


def test_defaults_are_the_embedded_backends(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    assert settings.online_store is StoreBackend.SQLITE
    assert settings.event_stream is EventStreamKind.FILE
    assert settings.alias_broadcast is BroadcastKind.RAY
    assert settings.offline_uri == str(tmp_path / "offline")
    assert settings.artifact_uri == str(tmp_path / "artifacts")


def test_env_vars_select_production_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MA_RAY_ONLINE_STORE", "cassandra")
    monkeypatch.setenv("MA_RAY_CASSANDRA_HOSTS", "10.1.0.1, 10.1.0.2")
    monkeypatch.setenv("MA_RAY_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("MA_RAY_REDIS_URL", "redis://cache:6380/1")
    settings = load_settings()
    assert settings.online_store is StoreBackend.CASSANDRA
    assert settings.cassandra_hosts == ["10.1.0.1", "10.1.0.2"]
    assert settings.redis_host_port == ("cache", 6380)
    assert settings.kafka_host_port == ("k1", 9092)
    assert not settings.is_managed("cassandra")
    assert not settings.is_managed("redis")


def test_bad_values_name_the_field_and_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MA_RAY_ONLINE_STORE", "mysql")
    monkeypatch.setenv("MA_RAY_CASSANDRA_PORT", "70000")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "online_store (MA_RAY_ONLINE_STORE='mysql')" in message
    assert "'sqlite' or 'cassandra'" in message
    assert "cassandra_port (MA_RAY_CASSANDRA_PORT='70000')" in message


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("redis_url", "http://x", "must start with redis://"),
        ("kafka_bootstrap", "broker-without-port", "is not host:port"),
        ("kafka_bootstrap", "b:99999", "is not host:port"),
        ("cassandra_hosts", "", "at least one host"),
        ("external_services", "redis,postgres", "external_services"),
        ("cassandra_read_consistency", "SOMETIMES", "LOCAL_QUORUM"),
    ],
)
def test_each_bad_field_is_refused(field: str, value: str, fragment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"MA_RAY_{field.upper()}", value)
    with pytest.raises(SettingsError, match=fragment):
        load_settings()


def test_yaml_file_with_env_on_top(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ma-ray.yaml"
    path.write_text("online_store: cassandra\ncassandra_port: 19042\nredis_url: redis://127.0.0.1:16379/0\n")
    monkeypatch.setenv("MA_RAY_CASSANDRA_PORT", "29042")
    settings = Settings.from_yaml(path)
    assert settings.online_store is StoreBackend.CASSANDRA
    assert settings.cassandra_port == 29042
    assert settings.redis_host_port == ("127.0.0.1", 16379)


def test_config_file_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ma-ray.yaml"
    path.write_text("gallery_store: cassandra\n")
    monkeypatch.setenv("MA_RAY_CONFIG_FILE", str(path))
    assert load_settings().gallery_store.value == "cassandra"


def test_yaml_with_unknown_field_or_bad_shape(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("online_stor: cassandra\n")
    with pytest.raises(SettingsError, match="online_stor"):
        Settings.from_yaml(unknown)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("- just\n- a list\n")
    with pytest.raises(SettingsError, match="must hold a mapping"):
        Settings.from_yaml(scalar)
    with pytest.raises(SettingsError, match="does not exist"):
        Settings.from_yaml(tmp_path / "missing.yaml")


def test_managed_means_loopback_and_not_listed_external() -> None:
    settings = load_settings(external_services=["kafka"])
    assert settings.is_managed("redis")
    assert settings.is_managed("cassandra")
    assert not settings.is_managed("kafka")
    assert is_loopback("localhost") and is_loopback("127.0.0.5") and is_loopback("::1")
    assert not is_loopback("10.0.0.1") and not is_loopback("cassandra.internal")
