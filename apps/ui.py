"""The ma-ray web UI as a Ray Serve application (``route_prefix: /ui`` in clusters/serve/ma-ray-serve.yaml): the
pages of `ma_ray.ui`, with the Serving page reading every node's Ray metrics endpoint. Locally: `ma-ray ui`.

Run alone with `serve run apps.ui:app --route-prefix /ui`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from ray import serve

from ma_ray.config import load_settings
from ma_ray.ui import build_ui


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.1})
@serve.ingress()
class WebUI:
    def __init__(self, settings_overrides: dict[str, Any] | None = None) -> None:
        self._settings = load_settings(**(settings_overrides or {}))

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_ui(self._settings)


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve config entry point: ``import_path: apps.ui:build_app``."""
    return WebUI.bind(args.get("settings"))


app = WebUI.bind()
