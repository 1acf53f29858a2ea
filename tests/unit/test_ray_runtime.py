"""Which Ray a process starts or joins: the settings' cluster, the cluster of the job Ray runs it as, the
cluster a job-API address names, or a small local Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from ma_ray.config import load_settings
from ma_ray.ray_runtime import ray_init_kwargs

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
