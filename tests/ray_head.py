"""A local Ray cluster the way users run one: `ray start --head` with its dashboard and job server and Ray's token
authentication on (the README's `export RAY_AUTH_MODE=token` and `ray get-auth-token --generate`), on ports of its
own (so it never collides with another Ray on the machine), joined by address."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ma_ray.ray_runtime import SERVE_INGRESS_ENV
from tests.ports import free_port


@dataclass(frozen=True)
class RayHead:
    gcs_address: str  # for ray.init(address=...) and MA_RAY_RAY_ADDRESS
    job_server: str  # http://...: the dashboard, the job-submission API


# What the README tells every shell that starts or talks to a cluster: Ray's token authentication, Serve's ingress.
CLUSTER_ENV = {"RAY_AUTH_MODE": "token", **SERVE_INGRESS_ENV}


def ensure_auth_token(env: dict[str, str] | None = None) -> None:
    """The README's `ray get-auth-token --generate`: the token in ~/.ray/auth_token, made once."""
    ray_cli = str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray_cli, "get-auth-token", "--generate"], env=env, capture_output=True, check=True, timeout=60)


@contextlib.contextmanager
def ray_head(num_cpus: int, object_store_mb: int, metrics_export_port: int | None = None,
             env: dict[str, str] | None = None) -> Iterator[RayHead]:  # fmt: skip
    """Start a one-node cluster, wait until it runs a trivial job, yield its addresses, then stop it. `env` is the
    environment of `ray start` (default: this process's, plus `CLUSTER_ENV`), which every job and Serve replica of
    the cluster inherits (settings, PATH)."""
    env = {**os.environ, **CLUSTER_ENV} if env is None else env
    ensure_auth_token(env)
    temp = tempfile.mkdtemp(prefix="mray_", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    gcs, dashboard = free_port(), free_port()
    ports = {
        "--port": gcs,
        "--dashboard-port": dashboard,
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
        "--ray-client-server-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--metrics-export-port": metrics_export_port or free_port(),
    }
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--num-cpus={num_cpus}",
         "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", "--include-dashboard=true",
         "--disable-usage-stats", f"--temp-dir={temp}", f"--object-store-memory={object_store_mb * 1024 * 1024}",
         *(f"{k}={v}" for k, v in ports.items())],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    cluster = RayHead(f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}")
    try:
        _wait_for_job_server(cluster.job_server, head)
        yield cluster
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # every process of the cluster shuts down on its own
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # whatever outlived the head's own shutdown
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_job_server(address: str, head: subprocess.Popen, timeout_s: float = 180) -> None:
    """Until a trivial job runs: the server answers before its node agent can take jobs."""
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + timeout_s
    while True:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}")
        try:
            client = JobSubmissionClient(address)
            probe = client.submit_job(entrypoint="true", submission_id=f"probe-{uuid.uuid4().hex[:6]}")
            while client.get_job_status(probe).value in ("PENDING", "RUNNING"):
                time.sleep(0.5)
            return
        except (ConnectionError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)
