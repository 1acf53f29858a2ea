from pathlib import Path

import pytest

from ma_ray.config import (
    CassandraOnlineStoreConfig,
    FileEventStreamConfig,
    RayAliasBroadcastConfig,
    Settings,
    SettingsError,
    SqliteOnlineStoreConfig,
    is_loopback,
    load_settings,
)
from ma_ray.jobs import settings_env


def test_defaults_are_the_embedded_backends(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    assert isinstance(settings.online_store, SqliteOnlineStoreConfig)
    assert isinstance(settings.event_stream, FileEventStreamConfig)
    assert isinstance(settings.alias_broadcast, RayAliasBroadcastConfig)
    assert settings.offline_uri == str(tmp_path / "offline")
    assert settings.artifact_uri == str(tmp_path / "artifacts")


def test_env_vars_select_production_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MA_RAY_ONLINE_STORE", "cassandra")
    monkeypatch.setenv("MA_RAY_CASSANDRA_HOSTS", "10.1.0.1, 10.1.0.2")
    monkeypatch.setenv("MA_RAY_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("MA_RAY_REDIS_URL", "redis://cache:6380/1")
    settings = load_settings()
    assert isinstance(settings.online_store, CassandraOnlineStoreConfig)
    assert settings.cassandra.hosts == ["10.1.0.1", "10.1.0.2"]
    assert settings.redis.host_port == ("cache", 6380)
    assert settings.kafka.host_port == ("k1", 9092)
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
    assert "cassandra.port (MA_RAY_CASSANDRA_PORT='70000')" in message


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("redis_url", "http://x", "must start with redis://"),
        ("kafka_bootstrap", "broker-without-port", "is not host:port"),
        ("kafka_bootstrap", "b:99999", "is not host:port"),
        ("cassandra_hosts", "", "at least one host"),
        ("external_services", "redis,postgres", "external_services"),
        ("cassandra_read_consistency", "SOMETIMES", "LOCAL_QUORUM"),
        ("services_niceness", "20", r"services_niceness \(MA_RAY_SERVICES_NICENESS='20'\).*less than or equal to 19"),
        ("services_niceness", "-5", "greater than or equal to 0"),
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
    assert isinstance(settings.online_store, CassandraOnlineStoreConfig)
    assert settings.cassandra.port == 29042
    assert settings.redis.host_port == ("127.0.0.1", 16379)


def test_config_file_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ma-ray.yaml"
    path.write_text("gallery_store: cassandra\n")
    monkeypatch.setenv("MA_RAY_CONFIG_FILE", str(path))
    assert load_settings().gallery_store.type == "cassandra"


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


def test_grouped_yaml_with_per_backend_fields(tmp_path: Path) -> None:
    path = tmp_path / "ma-ray.yaml"
    path.write_text(
        "online_store: {type: cassandra, redis_cache_ttl_s: 60, l1_cache_ttl_s: 0.5}\n"
        "meta_store: cassandra\n"  # the bare type is short for {type: cassandra}
        "cassandra: {hosts: [c1, c2], keyspace: prod}\n"
        "redis: {url: redis://cache:6380/1}\n"
    )
    settings = Settings.from_yaml(path)
    assert isinstance(settings.online_store, CassandraOnlineStoreConfig)
    assert (settings.online_store.redis_cache_ttl_s, settings.online_store.l1_cache_ttl_s) == (60, 0.5)
    assert settings.meta_store.type == "cassandra"
    assert (settings.cassandra.hosts, settings.cassandra.keyspace, settings.cassandra.port) == (
        ["c1", "c2"],
        "prod",
        9042,
    )
    assert settings.redis.host_port == ("cache", 6380)


def test_a_backend_refuses_another_backends_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    # Redis fronts only the Cassandra online store: its TTL on the SQLite one is a mistake, named as such.
    monkeypatch.setenv("MA_RAY_REDIS_CACHE_TTL_S", "60")
    with pytest.raises(SettingsError, match=r"online_store.redis_cache_ttl_s \(MA_RAY_REDIS_CACHE_TTL_S='60'\)"):
        load_settings()
    monkeypatch.setenv("MA_RAY_ONLINE_STORE", "cassandra")
    assert load_settings().online_store == CassandraOnlineStoreConfig(redis_cache_ttl_s=60)


def test_unknown_field_inside_a_group_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ma-ray.yaml"
    path.write_text("cassandra: {hostz: [c1]}\n")
    with pytest.raises(SettingsError, match=r"cassandra.hostz \(MA_RAY_CASSANDRA__HOSTZ=.*Extra inputs"):
        Settings.from_yaml(path)


def test_grouped_env_names_merge_with_the_flat_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MA_RAY_ONLINE_STORE", "cassandra")
    monkeypatch.setenv("MA_RAY_ONLINE_STORE__L1_CACHE_TTL_S", "0.5")
    monkeypatch.setenv("MA_RAY_CASSANDRA__KEYSPACE", "grouped")
    monkeypatch.setenv("MA_RAY_CASSANDRA_PORT", "19042")
    settings = load_settings()
    assert settings.online_store == CassandraOnlineStoreConfig(l1_cache_ttl_s=0.5)
    assert (settings.cassandra.keyspace, settings.cassandra.port) == ("grouped", 19042)


def test_priority_keywords_over_env_over_yaml_group_by_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ma-ray.yaml"
    path.write_text("online_store: {type: sqlite, feature_timeout_s: 2.0}\ncassandra: {keyspace: from_yaml, port: 1}\n")
    monkeypatch.setenv("MA_RAY_CASSANDRA_PORT", "2")
    # a type given alone keeps the file's other fields of that group
    settings = Settings.from_yaml(path, online_store="cassandra", cassandra_keyspace="from_kwargs")
    assert settings.online_store == CassandraOnlineStoreConfig(feature_timeout_s=2.0)
    assert (settings.cassandra.keyspace, settings.cassandra.port) == ("from_kwargs", 2)


def test_settings_env_rebuilds_the_same_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a training job receives: the flat env vars users know, loading to the controller's settings."""
    original = load_settings(
        state_dir=tmp_path, online_store={"type": "cassandra", "redis_cache_ttl_s": 7}, cassandra_hosts=["a", "b"],
        meta_store="cassandra", alias_broadcast="redis", admin_token="s3cret",
    )  # fmt: skip
    env = settings_env(original)
    assert env["MA_RAY_ONLINE_STORE"] == "cassandra" and env["MA_RAY_CASSANDRA_HOSTS"] == "a,b"
    assert env["MA_RAY_REDIS_CACHE_TTL_S"] == "7" and env["MA_RAY_ADMIN_TOKEN"] == "s3cret"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rebuilt = load_settings()
    assert rebuilt.model_dump(exclude={"ray", "admin_token"}) == original.model_dump(exclude={"ray", "admin_token"})
    assert rebuilt.admin_token is not None and rebuilt.admin_token.get_secret_value() == "s3cret"


def test_replaced_validates_and_reads_no_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = load_settings(state_dir=tmp_path, online_store="cassandra", cassandra_keyspace="base")
    monkeypatch.setenv("MA_RAY_CASSANDRA_PORT", "19042")  # set after: a copy must not pick it up
    copy = base.replaced(redis_url="redis://other:6380/0", feature_timeout_s=2.0)
    assert copy.redis.host_port == ("other", 6380) and copy.online_store.feature_timeout_s == 2.0
    assert (copy.cassandra.keyspace, copy.cassandra.port, copy.online_store.type) == ("base", 9042, "cassandra")
    with pytest.raises(SettingsError, match=r"redis\.url"):
        base.replaced(redis_url="http://nope")
