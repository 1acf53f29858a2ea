"""`ma-ray demo --production`: the demo's settings on the real servers (Cassandra, Redis, Kafka).

The servers are the ones the settings name: ``MA_RAY_CONFIG_FILE`` when set (e.g. a copy of
`clusters/settings/external-servers.example.yaml`), else `clusters/settings/local-services.yaml`, the loopback
servers that `ma-ray services up` starts. Every backend is the production one whatever the file says, and the
run keeps its Parquet, artifacts and checkpoints in a state directory of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

from ma_ray.config import CONFIG_FILE_ENV, ENV_PREFIX, Settings, load_settings
from ma_ray.services import build_servers

PRODUCTION_BACKENDS = {
    "online_store": "cassandra",
    "meta_store": "cassandra",
    "gallery_store": "cassandra",
    "alias_broadcast": "redis",
    "event_stream": "kafka",
}
LOCAL_SERVICES = Path(__file__).resolve().parents[1] / "clusters" / "settings" / "local-services.yaml"
# Apart from the embedded demo's `.ma_ray/`, so the two never read each other's SQLite files or snapshots.
STATE_DIR = Path(".ma_ray") / "demo-production"


class ServicesUnavailable(RuntimeError):
    """A production server did not answer; the message names each one and how to start them."""


def production_settings() -> Settings:
    """The production backends on the servers the settings name; ``MA_RAY_STATE_DIR`` still moves the state."""
    overrides: dict[str, object] = dict(PRODUCTION_BACKENDS)
    if not os.environ.get(f"{ENV_PREFIX}STATE_DIR"):
        overrides["state_dir"] = STATE_DIR.absolute()
    if os.environ.get(CONFIG_FILE_ENV):
        return load_settings(**overrides)
    return Settings.from_yaml(LOCAL_SERVICES, **overrides)


def check_services(settings: Settings) -> list[str]:
    """A real request to Redis, Cassandra and Kafka; returns what each answered, raises if any did not."""
    answers, missing, managed = [], [], False
    for name, server in build_servers(settings).items():
        host, port, setting = server.endpoints()[0]
        try:
            answers.append(f"{name} at {host}:{port}: {server.check()}")
        except Exception as error:  # any client error means "not reachable"; its first line is shown
            first_line = next(iter(str(error).splitlines()), "")[:200]
            where = "" if settings.is_managed(name) else f" (external: check {setting})"
            missing.append(f"  {name} at {host}:{port}{where}: {type(error).__name__}: {first_line}")
            managed = managed or settings.is_managed(name)
    if missing:
        # loopback servers are ours to start; external ones only their settings can fix
        hint = "\nrun: ma-ray services up" if managed else ""
        raise ServicesUnavailable(
            "the production demo needs Redis, Cassandra and Kafka; not reachable:\n" + "\n".join(missing) + hint
        )
    return answers
