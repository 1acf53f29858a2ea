"""The `ma-ray` command: `ma-ray <noun> <verb>`, tables for people and `--json` for scripts."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable

from ma_ray.config import ServiceName, load_settings, setting_rows
from ma_ray.gallery.cli import add_commands as add_gallery_commands
from ma_ray.jobs.cli import add_commands as add_job_commands
from ma_ray.palette.cli import add_commands as add_palette_commands
from ma_ray.services import ALL_SERVICES, ServiceError, ServiceLauncher, ServiceStatus
from ma_ray.text_table import format_table
from ma_ray.ui.cli import add_commands as add_ui_commands


def _services(names: str) -> tuple[ServiceName, ...]:
    chosen = tuple(name.strip() for name in names.split(",") if name.strip()) if names else ALL_SERVICES
    unknown = [name for name in chosen if name not in ALL_SERVICES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown service {unknown[0]!r}; choose from {', '.join(ALL_SERVICES)}")
    return chosen  # type: ignore[return-value]


def _print_statuses(statuses: list[ServiceStatus], as_json: bool) -> None:
    if as_json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
        return
    rows = [(s.name, s.state, s.endpoint, s.pid, s.detail, s.log) for s in statuses]
    print(format_table(rows, ["service", "state", "endpoint", "pid", "detail", "log"]))


def cmd_services(args: argparse.Namespace) -> int:
    launcher = ServiceLauncher(load_settings())
    if args.verb == "up":
        _print_statuses(launcher.up(args.only), args.json)
        return 0
    if args.verb == "down":
        stopped = launcher.down(args.only)
        print(json.dumps({"stopped": stopped}) if args.json else f"stopped: {', '.join(stopped) or 'nothing'}")
        return 0
    statuses = launcher.status(args.only)
    _print_statuses(statuses, args.json)
    return 0 if all(s.state in ("healthy", "external") for s in statuses) else 1


def cmd_settings(args: argparse.Namespace) -> int:
    settings = load_settings()
    values = settings.model_dump(mode="json")
    if args.json:
        print(json.dumps(values, indent=2))
    else:
        rows = [(".".join(path), "-" if value is None else value, env) for path, value, env in setting_rows(values)]
        print(format_table(rows, ["setting", "value", "environment variable"]))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo is an app (apps.demo); run it as a child process, exactly as `ray job submit` would."""
    return subprocess.call([sys.executable, "-m", "apps.demo", *args.extra])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ma-ray", description="Michelangelo on Ray")
    nouns = parser.add_subparsers(dest="noun", required=True)

    services = nouns.add_parser("services", help="start, check and stop Redis, Cassandra and Kafka")
    services.add_argument("verb", choices=["up", "down", "status"])
    services.add_argument("--only", type=_services, default=ALL_SERVICES, help="comma-separated subset")
    services.add_argument("--json", action="store_true")
    services.set_defaults(handler=cmd_services)

    settings = nouns.add_parser("settings", help="show the effective settings")
    settings.add_argument("verb", choices=["show"])
    settings.add_argument("--json", action="store_true")
    settings.set_defaults(handler=cmd_settings)

    add_palette_commands(nouns)
    add_gallery_commands(nouns)
    add_job_commands(nouns)
    add_ui_commands(nouns)

    # add_help=False: `ma-ray demo --help` reaches apps.demo, which owns the demo's options
    demo = nouns.add_parser(
        "demo",
        add_help=False,
        help="run the main job on embedded defaults (--production: on Cassandra, Redis and Kafka; "
        "all options: `ma-ray demo --help`)",
    )
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.noun != "demo":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (ServiceError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
