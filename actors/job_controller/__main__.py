"""``python -m actors.job_controller --clusters FILE``: start the cluster's job controller, or report the one
running."""

from __future__ import annotations

import argparse
import sys

import ray

from actors.job_controller.actor import NAME, NAMESPACE, PREEMPT_GRACE_S
from actors.job_controller.client import job_controller
from ma_ray.config import load_settings
from ma_ray.jobs import load_clusters_file


def main(argv: list[str] | None = None) -> int:
    """``python -m actors.job_controller --clusters FILE``: start the controller in the Ray cluster the settings
    name (``MA_RAY_RAY_ADDRESS``, default: the local ``ray start`` cluster), or report the running one."""
    parser = argparse.ArgumentParser(prog="python -m actors.job_controller", description=main.__doc__)
    parser.add_argument("--clusters", required=True, help="clusters YAML (see clusters/jobs/clusters.yaml)")
    parser.add_argument("--poll-s", type=float, default=2.0)
    parser.add_argument("--preempt-grace-s", type=float, default=PREEMPT_GRACE_S,
                        help="how long a preempted job may take to checkpoint before it is stopped")  # fmt: skip
    args = parser.parse_args(argv)
    settings = load_settings()
    ray.init(address=settings.ray.address or "auto", namespace=NAMESPACE, log_to_driver=False)
    controller = job_controller(settings, load_clusters_file(args.clusters), args.poll_s, args.preempt_grace_s)
    print(f"job controller {NAME} (namespace {NAMESPACE}) is running; {len(ray.get(controller.list.remote()))} job(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
