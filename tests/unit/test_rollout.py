"""The deployment flow's state logic: shadow load before the flip, rollback and alert on a failed load, the
wait for every ingress to switch. Gallery is real (SQLite, in-process bus); the serving pool is a recording
implementation of the rollout's own `ServingPool` interface (the Serve side is covered in tests/e2e)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from apps.deploy import render
from ma_ray.gallery import (
    AliasCache,
    ArtifactStore,
    DeploymentFailedError,
    DeploymentInProgressError,
    DeploymentLock,
    DeploymentStatus,
    Gallery,
    InProcessAliasBus,
    VersionSpec,
)
from ma_ray.gallery.store.sqlite import SqliteGalleryStore
from ma_ray.metrics import PrometheusMetrics
from ma_ray.serving.rollout import DEPLOY_FAILURES, DEPLOYMENTS, PreloadError, Rollout, RolloutMetrics, RolloutReport

MODEL = "eta"


class RecordingPool:
    """Loads by recording; fails for the ids in ``broken``; notes where the alias pointed during each load."""

    def __init__(self, gallery: Gallery, replicas: int = 2, broken: tuple[str, ...] = ()) -> None:
        self.gallery, self.replicas, self.broken = gallery, replicas, broken
        self.loads: list[tuple[str, int | None]] = []

    def preload(self, model_id: str, timeout_s: float) -> list[dict[str, Any]]:
        self.loads.append((model_id, self.gallery.aliases(MODEL).get("production")))
        if model_id in self.broken:
            raise PreloadError(f"{model_id} did not load on every replica: CorruptArtifactError: bad bytes")
        return [{"replica": f"r{i}", "model_id": model_id, "load_ms": 1.0} for i in range(self.replicas)]


@pytest.fixture
def gallery(tmp_path: Path) -> Iterator[Gallery]:
    bus = InProcessAliasBus()
    gallery = Gallery(SqliteGalleryStore(tmp_path / "gallery.sqlite"), ArtifactStore(str(tmp_path / "artifacts")), bus)
    gallery.register_model(name=MODEL, owner="maps", tier=1, framework="other")
    (tmp_path / "w.bin").write_bytes(b"w" * 64)
    published = gallery.artifacts.publish(MODEL, tmp_path / "w.bin", "other")
    spec = VersionSpec(
        artifact_uri=published.uri, checksum=published.checksum, size_bytes=published.size_bytes, flavor="other"
    )
    for _ in range(3):
        gallery.register_version(MODEL, spec)
    yield gallery
    gallery.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> RolloutMetrics:
    return RolloutMetrics.on(PrometheusMetrics(registry))


def rollout(gallery: Gallery, pool: RecordingPool, metrics: RolloutMetrics, **kwargs: Any) -> Rollout:
    return Rollout(gallery, pool, metrics=metrics, **kwargs)


def ingress(gallery: Gallery, name: str) -> AliasCache:
    return gallery.cached_resolver(name, ttl_s=3600)


def test_the_version_loads_everywhere_before_the_alias_moves_and_every_ingress_switches(
    gallery: Gallery, registry: CollectorRegistry, metrics: RolloutMetrics
) -> None:
    pool = RecordingPool(gallery)
    ingresses = [ingress(gallery, f"ingress-{i}") for i in range(2)]
    first = rollout(gallery, pool, metrics).deploy(MODEL, 1)
    assert [cache.get(MODEL, "production") for cache in ingresses] == [1, 1]

    report = rollout(gallery, pool, metrics).deploy(MODEL, 2)

    assert pool.loads == [("eta:1", None), ("eta:2", 1)]  # each load ran while the alias still pointed back
    assert (report.status, report.version, report.previous_version) == ("live", 2, 1)
    assert [r["replica"] for r in report.replicas] == ["r0", "r1"]
    assert (sorted(report.acknowledged), report.laggards) == (["ingress-0", "ingress-1"], [])
    assert [cache.get(MODEL, "production") for cache in ingresses] == [2, 2]
    assert report.deployment_id != first.deployment_id
    [live, *_] = rollout(gallery, pool, metrics).deployer.history(MODEL)
    assert (live.deployment_id, live.status) == (report.deployment_id, DeploymentStatus.LIVE)
    assert report.to_dict()["model_id"] == "eta:2"
    assert registry.get_sample_value(DEPLOYMENTS, {"model": MODEL, "status": "live"}) == 2


def test_a_version_that_fails_to_load_is_rolled_back_and_alerted(
    gallery: Gallery, registry: CollectorRegistry, metrics: RolloutMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    pool = RecordingPool(gallery, broken=("eta:3",))
    cache = ingress(gallery, "ingress-0")
    rollout(gallery, pool, metrics).deploy(MODEL, 2)

    with (
        caplog.at_level(logging.ERROR, logger="ma_ray.serving.rollout"),
        pytest.raises(DeploymentFailedError, match="stays at version 2"),
    ):
        rollout(gallery, pool, metrics).deploy(MODEL, 3)

    assert gallery.resolve(MODEL, "production") == 2 and cache.get(MODEL, "production") == 2
    failed = rollout(gallery, pool, metrics).deployer.history(MODEL)[0]
    assert (failed.version, failed.status) == (3, DeploymentStatus.ROLLED_BACK)
    assert "CorruptArtifactError: bad bytes" in failed.reason
    assert registry.get_sample_value(DEPLOY_FAILURES, {"model": MODEL}) == 1
    assert any("ALERT" in r.message and "eta:3" in r.message for r in caplog.records)
    assert gallery.store.current_lease(MODEL) is None  # the lock is released for the next deployment


def test_an_ingress_that_does_not_acknowledge_is_reported_and_the_change_stands(
    gallery: Gallery, registry: CollectorRegistry, metrics: RolloutMetrics
) -> None:
    def stuck(change: object) -> None:
        raise RuntimeError("this ingress never acknowledges")

    gallery.bus.subscribe("ingress-stuck", stuck)
    ingress(gallery, "ingress-ok")
    report = rollout(gallery, RecordingPool(gallery), metrics, propagation_timeout_s=0.2).deploy(MODEL, 1)
    assert (report.status, report.acknowledged, report.laggards) == ("live", ["ingress-ok"], ["ingress-stuck"])
    assert gallery.resolve(MODEL, "production") == 1


def test_a_deployment_waits_its_turn_behind_the_lock(gallery: Gallery, metrics: RolloutMetrics) -> None:
    pool = RecordingPool(gallery)
    with (
        DeploymentLock(gallery.store, MODEL, "someone-else"),
        pytest.raises(DeploymentInProgressError, match="someone-else"),
    ):
        rollout(gallery, pool, metrics).deploy(MODEL, 1)
    assert pool.loads == []
    assert rollout(gallery, pool, metrics).deploy(MODEL, 1).status == "live"


def test_without_an_alias_the_version_is_only_loaded(gallery: Gallery, metrics: RolloutMetrics) -> None:
    pool = RecordingPool(gallery)
    rollout(gallery, pool, metrics).deploy(MODEL, 1)
    report = rollout(gallery, pool, metrics).deploy(MODEL, "latest", alias=None)
    assert (report.version, report.status, report.acknowledged) == (3, "live", [])
    assert pool.loads[-1] == ("eta:3", 1)
    assert gallery.resolve(MODEL, "production") == 1


def test_the_deploy_job_prints_what_went_live_and_who_lagged() -> None:
    report = RolloutReport(
        "eta",
        7,
        "production",
        deployment_id="d1",
        previous_version=6,
        status="live",
        replicas=[{"replica": "r0", "model_id": "eta:7", "load_ms": 12.5, "already_loaded": False}],
        load_s=0.0125,
        acknowledged=["ingress-a"],
        laggards=["ingress-b"],
    )
    text = render(report)
    assert "eta:7 is live (production: 6 -> 7); deployment d1" in text
    assert "r0" in text and "12.5" in text
    assert "not acknowledged" in text and "ingress-b" in text
