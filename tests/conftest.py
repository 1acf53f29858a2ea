"""Shared fixtures: one set of real services and one local Ray for the whole session.

Tests are marked by folder (unit / integration / e2e) so `-m unit` runs the millisecond suite alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ma_ray.config import Settings, load_settings
from ma_ray.services import ServiceLauncher
from tests.ports import free_port
from tests.ray_head import CLUSTER_ENV, RayHead, ray_head

ROOT = Path(__file__).resolve().parent.parent
# The README's cluster exports (token authentication, Serve's ingress: `CLUSTER_ENV`), before anything reads Ray's
# config: the tests are a shell that talks to the session's cluster, whose token authentication stays on.
os.environ.update(CLUSTER_ENV)
# Chosen before Ray starts: the session's Ray exports its Prometheus metrics here.
RAY_METRICS_PORT = free_port()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if kind in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(autouse=True)
def _no_settings_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their own settings; a developer's MA_RAY_CONFIG_FILE must not change them."""
    monkeypatch.delenv("MA_RAY_CONFIG_FILE", raising=False)


@pytest.fixture(scope="session")
def ma_ray_cli() -> str:
    """The installed `ma-ray` console script of this interpreter's environment."""
    path = Path(sys.executable).with_name("ma-ray")
    assert path.exists(), f"{path} is missing: install the project (make install)"
    return str(path)


@pytest.fixture(scope="session")
def service_settings() -> Settings:
    """Settings of the shared services (the ones `make test` started; started here if they are not up)."""
    return load_settings(state_dir=ROOT / ".ma_ray")


@pytest.fixture(scope="session")
def services(service_settings: Settings) -> Settings:
    ServiceLauncher(service_settings).up()
    return service_settings


@pytest.fixture(scope="session")
def ray_head_node() -> Iterator[RayHead]:
    """One small Ray cluster for the session, started as users start one (`ray start --head`, with the
    dashboard and its job server), and joined by this process."""
    import ray

    # 4 logical CPUs on 2 cores: training jobs submitted to the job server find room beside the tests' actors.
    with ray_head(num_cpus=4, object_store_mb=300, metrics_export_port=RAY_METRICS_PORT) as head:
        ray.init(address=head.gcs_address, log_to_driver=False)
        try:
            yield head
        finally:
            ray.shutdown()


@pytest.fixture(scope="session")
def ray_cluster(ray_head_node: RayHead) -> str:
    """The session Ray's address, so child processes (`MA_RAY_RAY_ADDRESS`) join it."""
    return ray_head_node.gcs_address


@pytest.fixture(scope="session")
def job_server(ray_head_node: RayHead) -> str:
    """The session Ray's job-submission address (what `ray job submit --address` takes)."""
    return ray_head_node.job_server


@pytest.fixture(scope="session")
def ray_metrics_url(ray_cluster: str) -> str:
    """The session Ray's Prometheus endpoint (what the Ray dashboard and Prometheus scrape)."""
    return f"http://127.0.0.1:{RAY_METRICS_PORT}/metrics"


@pytest.fixture(scope="session")
def raw_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Raw Parquet of a small generated rideshare world (tests/rideshare_data.py)."""
    from tests.rideshare_data import write_raw

    return write_raw(str(tmp_path_factory.mktemp("raw")))
