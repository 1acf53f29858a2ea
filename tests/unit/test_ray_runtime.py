"""Which Ray a process starts or joins: the settings' cluster, the cluster of the job Ray runs it as, the
cluster a job-API address names, or a small local Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ma_ray.config import load_settings
from ma_ray.ray_runtime import SERVE_INGRESS_ENV, init_ray, ray_init_kwargs

pytestmark = pytest.mark.unit


def test_without_an_address_a_small_local_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    kwargs = ray_init_kwargs(load_settings(state_dir=tmp_path))
    assert "address" not in kwargs and kwargs["object_store_memory"] > 0 and kwargs["log_to_driver"] is False


def test_a_job_joins_the_cluster_ray_runs_it_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")  # what `ray job submit` sets for the entrypoint
    assert ray_init_kwargs(load_settings(state_dir=tmp_path)) == {
        "address": "10.0.0.5:6379",
        "ignore_reinit_error": True,
    }


def test_a_job_api_address_means_this_machine_s_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")  # `export RAY_ADDRESS=...` for `ray job submit`
    assert ray_init_kwargs(load_settings(state_dir=tmp_path))["address"] == "auto"


def test_the_settings_address_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    settings = load_settings(state_dir=tmp_path, ray_address="ray-head:6379")
    assert ray_init_kwargs(settings)["address"] == "ray-head:6379"


@pytest.mark.parametrize("joins", [False, True])
def test_a_ray_of_its_own_gets_the_shipped_ingress_a_joined_one_keeps_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, joins: bool
) -> None:
    """A local Ray inherits this process's environment: Serve's ingress as the README's cluster runs it (a user's own
    setting stays); a cluster that is joined keeps the ingress it was started with."""
    import ray

    seen: list[dict[str, str | None]] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **_: seen.append({n: os.environ.get(n) for n in SERVE_INGRESS_ENV}))
    for name in SERVE_INGRESS_ENV:
        monkeypatch.delenv(name, raising=False)
    if joins:
        monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    else:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    init_ray(load_settings(state_dir=tmp_path))
    assert seen == [dict.fromkeys(SERVE_INGRESS_ENV) if joins else SERVE_INGRESS_ENV]
    monkeypatch.setenv("RAY_SERVE_ENABLE_HA_PROXY", "0")
    seen.clear()
    init_ray(load_settings(state_dir=tmp_path))
    assert seen[0]["RAY_SERVE_ENABLE_HA_PROXY"] == "0"


def test_the_readme_cluster_exports_the_shipped_serve_ingress() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- readme-test: cluster-start -->", 1)[1].split("```", 2)[1]
    for name, value in SERVE_INGRESS_ENV.items():
        assert f"export {name}={value} " in block, f"the README's cluster-start block does not export {name}={value}"
