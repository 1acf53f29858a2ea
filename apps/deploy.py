"""Deploy a model version to the running prediction service, as a job:

    python -m apps.deploy --model eta_minutes --version 7 [--alias production] [--json]
    ray job submit --working-dir . -- python -m apps.deploy --model eta_minutes --version latest

Takes the model's deployment lock in Gallery, loads the version on every replica of the prediction
application's model pool (shadow load), moves the alias in one compare-and-set, waits until every ingress has
switched, releases the lock. A version that fails to load is rolled back: the alias stays where it was and the
failure is recorded in Gallery's deployment history. Exit status: 0 live, 1 rolled back, 2 refused (unknown
model or version, another deployment in progress, bad settings).
"""

from __future__ import annotations

import argparse
import json
import sys

from ma_ray.config import SettingsError, load_settings
from ma_ray.gallery import DeploymentFailedError, Gallery, GalleryError
from ma_ray.ray_runtime import init_ray
from ma_ray.serving import Rollout, RolloutReport, ServePool
from ma_ray.text_table import format_table


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        settings = load_settings(**({"ray_address": args.ray_address} if args.ray_address else {}))
    except (SettingsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    init_ray(settings)
    gallery = Gallery.from_settings(settings)
    rollout = Rollout(
        gallery,
        ServePool(gallery, args.app, args.deployment or None),
        load_timeout_s=args.load_timeout_s,
        propagation_timeout_s=args.propagation_timeout_s,
    )
    try:
        report = rollout.deploy(args.model, args.version, args.alias or None)
    except DeploymentFailedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (GalleryError, KeyError) as error:
        print(f"error: {str(error).strip(chr(39))}", file=sys.stderr)
        return 2
    finally:
        gallery.close()
    print(json.dumps(report.to_dict(), indent=2) if args.json else render(report))
    return 0


def render(report: RolloutReport) -> str:
    """The report for people: what went live, where it loaded, how long each step took."""
    moved = f"{report.alias}: {report.previous_version} -> {report.version}" if report.alias else "no alias moved"
    loads = [
        (r.get("replica", "?"), r.get("model_id", report.model_id), r.get("load_ms"), r.get("already_loaded"))
        for r in report.replicas
    ]
    lines = [
        f"{report.model_id} is {report.status} ({moved}); deployment {report.deployment_id}",
        format_table(loads, ["replica", "model id", "load ms", "already loaded"]),
        f"shadow load {report.load_s * 1000:.1f} ms; {len(report.acknowledged)} ingress(es) switched in "
        f"{report.propagation_s * 1000:.1f} ms; total {report.total_s * 1000:.1f} ms",
    ]
    if report.laggards:
        lines.append(f"not acknowledged (their alias cache expires on its own): {', '.join(report.laggards)}")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m apps.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", required=True, help='a version number, "latest", or an alias to copy')
    parser.add_argument("--alias", default="production", help='the alias to move ("" only loads the version)')
    parser.add_argument("--app", default="prediction", help="the Serve application serving the model")
    parser.add_argument("--deployment", default="", help="the pool deployment (default: by the model's tier)")
    parser.add_argument("--load-timeout-s", type=float, default=120.0)
    parser.add_argument("--propagation-timeout-s", type=float, default=5.0)
    parser.add_argument("--ray-address", default="", help="join this Ray cluster (default: settings)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
