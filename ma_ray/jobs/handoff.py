"""The controller's settings as the places it starts receive them: the actor (a JSON dict) and each training job
(``MA_RAY_*`` environment variables), written once so both carry the same stores and URIs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ma_ray.config import ENV_PREFIX, Settings, flat_values

# Settings that describe the controller's own Ray, not the cluster a training job runs on.
LOCAL_ONLY = frozenset({"ray_address", "ray_num_cpus", "ray_object_store_mb"})


def portable_settings(settings: Settings) -> dict[str, Any]:
    """The settings as JSON values another process loads the same: the state directory absolute (its working
    directory is not ours) and the admin token revealed (a secret dumps as a mask)."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    data["state_dir"] = str(settings.state_dir.absolute())
    if settings.admin_token is not None:
        data["admin_token"] = settings.admin_token.get_secret_value()
    return data


def settings_env(settings: Settings) -> dict[str, str]:
    """``MA_RAY_*`` env vars that give a training job the controller's stores and URIs."""
    env = {}
    for name, value in flat_values(portable_settings(settings)).items():
        if value is None or name in LOCAL_ONLY:
            continue
        env[f"{ENV_PREFIX}{name.upper()}"] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return env


def settings_fingerprint(settings: Settings) -> str:
    """Which stores and URIs a controller works with: two callers with other fingerprints must not share one."""
    return hashlib.sha256(json.dumps(settings_env(settings), sort_keys=True).encode()).hexdigest()[:16]
