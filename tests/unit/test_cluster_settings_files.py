"""The settings files shipped in clusters/ load and select what they say."""

from pathlib import Path

import pytest

from ma_ray.config import CassandraOnlineStoreConfig, Settings

SETTINGS_DIR = Path(__file__).resolve().parents[2] / "clusters" / "settings"


@pytest.mark.parametrize("path", sorted(SETTINGS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_settings_file_loads_with_production_backends(path: Path) -> None:
    settings = Settings.from_yaml(path)
    assert isinstance(settings.online_store, CassandraOnlineStoreConfig)


def test_external_example_starts_nothing() -> None:
    settings = Settings.from_yaml(SETTINGS_DIR / "external-servers.example.yaml")
    assert not any(settings.is_managed(name) for name in ("redis", "cassandra", "kafka"))
    assert settings.offline_uri.startswith("s3://")
