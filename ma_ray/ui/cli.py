"""`ma-ray ui`: the web UI on this machine, over the settings' stores (embedded defaults need no server)."""

from __future__ import annotations

import argparse

from ma_ray.config import load_settings

DEFAULT_PORT = 8300


def cmd_ui(args: argparse.Namespace) -> int:
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse

    from ma_ray.ray_runtime import init_ray
    from ma_ray.ui.app import build_ui

    settings = load_settings()
    if settings.ray.address:  # the Serving page reads the cluster's metrics endpoints
        init_ray(settings)
    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    root.mount("/ui", build_ui(settings))
    root.add_api_route("/", lambda: RedirectResponse("/ui/features"), include_in_schema=False)
    print(f"ma-ray UI at http://{args.host}:{args.port}/ui/ (state: {settings.state_dir}); Ctrl-C stops it", flush=True)
    uvicorn.run(root, host=args.host, port=args.port, log_level="warning")
    return 0


def add_commands(nouns: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ui = nouns.add_parser("ui", help="open the web UI: features, lineage, models, jobs, serving")
    ui.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    ui.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    ui.set_defaults(handler=cmd_ui)
