"""The command line a training attempt runs on its cluster, with the interpreter that cluster's jobs use.

Ray's job supervisor runs an entrypoint through a shell with the PATH of the process that started the cluster,
so a bare ``python`` is whatever that PATH finds first: the project's venv only if the user happened to activate
it. A cluster therefore names its interpreter; unnamed, a job server on this machine (loopback) runs jobs with the
controller's own interpreter (the one its Ray runs workers with), and any other cluster with its image's
``python``.
"""

from __future__ import annotations

import shlex
import sys
from urllib.parse import urlsplit

from ma_ray.config import is_loopback as host_is_loopback

IMAGE_PYTHON = "python"  # rayproject/ray images (and the project's Dockerfile) put their Python first on PATH


def is_loopback(address: str) -> bool:
    """Whether a job-submission address (``http://host:port``) names this machine."""
    return host_is_loopback(urlsplit(address).hostname or "")


def job_python(address: str, configured: str | None, own: str = sys.executable) -> str:
    """The interpreter jobs on the cluster at ``address`` run with: ``configured`` if the cluster names one, else
    ``own`` for a job server on this machine, else the image's ``python``."""
    if configured:
        return configured
    return own if is_loopback(address) else IMAGE_PYTHON


def training_entrypoint(python: str, job_id: str, attempt: int, workers: int) -> str:
    """``<python> -m apps.train ...``, quoted for the shell Ray runs it in."""
    args = [python, "-m", "apps.train", "--job-id", job_id, "--attempt", str(attempt), "--workers", str(workers)]
    return shlex.join(args)
