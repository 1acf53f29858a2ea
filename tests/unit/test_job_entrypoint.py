"""The training entrypoint names its interpreter: nothing depends on the PATH of whoever started the cluster."""

from __future__ import annotations

import shlex

import pytest

from ma_ray.jobs.entrypoint import IMAGE_PYTHON, is_loopback, job_python, training_entrypoint
from ma_ray.jobs.spec import ClusterSpec


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("http://127.0.0.1:8265", True),
        ("http://127.0.0.2:8265", True),
        ("http://localhost:8265", True),
        ("http://[::1]:8265", True),
        ("http://10.0.0.5:8265", False),
        ("https://ma-ray-head-svc:8265", False),
    ],
)
def test_loopback_addresses_are_this_machine(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_a_configured_interpreter_wins_everywhere() -> None:
    assert job_python("http://127.0.0.1:8265", "/opt/venv/bin/python", own="/x/python") == "/opt/venv/bin/python"
    assert job_python("http://head:8265", "/opt/venv/bin/python", own="/x/python") == "/opt/venv/bin/python"


def test_unconfigured_local_cluster_uses_the_controllers_interpreter_and_remote_the_images() -> None:
    assert job_python("http://127.0.0.1:8265", None, own="/work/.venv/bin/python") == "/work/.venv/bin/python"
    assert job_python("http://head:8265", None, own="/work/.venv/bin/python") == IMAGE_PYTHON


def test_entrypoint_quotes_an_interpreter_path_with_spaces() -> None:
    line = training_entrypoint("/home/a user/ma ray/.venv/bin/python", "eta-1a2b3c4d", 2, 3)
    assert shlex.split(line) == [
        "/home/a user/ma ray/.venv/bin/python", "-m", "apps.train",
        "--job-id", "eta-1a2b3c4d", "--attempt", "2", "--workers", "3",
    ]  # fmt: skip


def test_cluster_spec_carries_its_python_to_the_registry() -> None:
    node = {"name": "head", "cpu": 4, "memory_gb": 8}
    spec = ClusterSpec.model_validate({"name": "k", "address": "http://head:8265", "nodes": [node], "python": "/p"})
    assert spec.to_cluster().python == "/p"
    unnamed = ClusterSpec.model_validate({"name": "k", "address": "http://head:8265", "nodes": [node]})
    assert unnamed.to_cluster().python is None
    with pytest.raises(ValueError, match="python"):
        ClusterSpec.model_validate({"name": "k", "address": "http://head:8265", "nodes": [node], "python": ""})
