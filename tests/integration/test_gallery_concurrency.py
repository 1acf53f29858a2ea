"""Races against the real servers: 50 concurrent compare-and-sets of one alias, 20 concurrent deployments of
one model, concurrent version registrations; and a crashed deployer's lease expiring (real Cassandra TTL)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from ma_ray.gallery import (
    AliasConflictError,
    ArtifactStore,
    DeploymentInProgressError,
    DeploymentLock,
    Gallery,
    InProcessAliasBus,
    VersionSpec,
)
from ma_ray.gallery.models import Lease, utc_now
from ma_ray.gallery.store import GalleryStore
from tests.polling import wait_for


@pytest.fixture
def gallery(gallery_store: GalleryStore, tmp_path: Path) -> Gallery:
    return Gallery(gallery_store, ArtifactStore(str(tmp_path / "artifacts")), InProcessAliasBus(), user="ci")


def published(gallery: Gallery, tmp_path: Path, model: str) -> VersionSpec:
    (tmp_path / "m").mkdir(exist_ok=True)
    (tmp_path / "m" / "weights.bin").write_bytes(b"w" * 100)
    artifact = gallery.artifacts.publish(model, tmp_path / "m", "other")
    return VersionSpec(
        artifact_uri=artifact.uri, checksum=artifact.checksum, size_bytes=artifact.size_bytes, flavor="other"
    )


def model_with_versions(gallery: Gallery, tmp_path: Path, versions: int) -> str:
    name = f"race_{uuid.uuid4().hex[:8]}"
    gallery.register_model(name=name, owner="ci", tier=1, framework="other")
    spec = published(gallery, tmp_path, name)
    for _ in range(versions):
        gallery.register_version(name, spec)
    return name


def race(calls: list[Callable[[], object]]) -> list[object]:
    """Run every call at once (released together by a barrier); each result or the exception it raised."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], object]) -> object:
        barrier.wait()
        try:
            return call()
        except Exception as error:
            return error

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_fifty_concurrent_set_alias_with_the_same_expected_exactly_one_wins(gallery: Gallery, tmp_path: Path) -> None:
    name = model_with_versions(gallery, tmp_path, versions=3)
    gallery.set_alias(name, "production", 1)
    results = race([lambda t=2 + i % 2: gallery.set_alias(name, "production", t, expected=1) for i in range(50)])
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1
    assert len(losers) == 49
    assert all(isinstance(e, AliasConflictError) and e.expected == 1 for e in losers), {repr(e) for e in losers}
    assert gallery.resolve(name, "production") == winners[0].to_version
    history = gallery.alias_history(name, "production")
    assert [(e.seq, e.from_version) for e in history] == [(1, None), (2, 1)]


def test_concurrent_unconditional_sets_all_land_in_one_consistent_history(gallery: Gallery, tmp_path: Path) -> None:
    name = model_with_versions(gallery, tmp_path, versions=3)
    results = race([lambda t=1 + i % 3: gallery.set_alias(name, "staging", t) for i in range(12)])
    assert not [r for r in results if isinstance(r, Exception)]
    history = gallery.alias_history(name, "staging")
    assert [e.seq for e in history] == list(range(1, 13))
    assert all(later.from_version == earlier.to_version for earlier, later in pairwise(history))
    assert gallery.resolve(name, "staging") == history[-1].to_version


def test_concurrent_registrations_get_distinct_consecutive_numbers(gallery: Gallery, tmp_path: Path) -> None:
    name = model_with_versions(gallery, tmp_path, versions=0)
    spec = published(gallery, tmp_path, name)
    results = race([lambda: gallery.register_version(name, spec) for _ in range(10)])
    assert sorted(r.version for r in results) == list(range(1, 11))


def test_twenty_concurrent_deployment_lock_attempts_exactly_one_proceeds(gallery_store: GalleryStore) -> None:
    model = f"deploy_{uuid.uuid4().hex[:8]}"
    locks = [DeploymentLock(gallery_store, model, f"deployer-{i}", lease_s=60) for i in range(20)]
    results = race([lock.acquire for lock in locks])
    holders = [lock for lock, r in zip(locks, results, strict=True) if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(holders) == 1
    assert len(refused) == 19
    assert all(isinstance(e, DeploymentInProgressError) for e in refused)
    assert all(f"being deployed by '{holders[0].holder}'" in str(e) for e in refused)
    assert holders[0].release()
    assert DeploymentLock(gallery_store, model, "next").acquire()


LEASE_S = 3.0


def _took_over(lock: DeploymentLock) -> bool:
    try:
        lock.acquire()
    except DeploymentInProgressError:
        return False
    return True


def test_an_expired_lease_is_taken_over(gallery_store: GalleryStore) -> None:
    model = f"deploy_{uuid.uuid4().hex[:8]}"
    # A lease long enough that the refusal below always comes within it on a loaded box (1 s did not, once).
    crashed = DeploymentLock(gallery_store, model, "crashed", lease_s=LEASE_S)
    lapses_at = time.monotonic() + LEASE_S  # at the earliest: the lease starts once acquire() is called
    crashed.acquire()
    with pytest.raises(DeploymentInProgressError, match="crashed"):
        DeploymentLock(gallery_store, model, "next", lease_s=60).acquire()
    # The crashed holder never releases; its lease lapses (a Cassandra TTL, a SQLite expiry), and not before.
    taker = DeploymentLock(gallery_store, model, "next", lease_s=60)
    wait_for(lambda: _took_over(taker), LEASE_S + 10, "the lapsed lease was never taken over")
    assert time.monotonic() >= lapses_at - 0.5  # not taken while it held (0.5 s: the stores' clocks and ours)
    assert gallery_store.current_lease(model).holder == "next"
    assert not crashed.release()  # the old token no longer holds anything
    assert gallery_store.current_lease(model).holder == "next"


def test_a_lease_found_expired_by_its_record_is_taken_over(gallery_store: GalleryStore) -> None:
    model = f"deploy_{uuid.uuid4().hex[:8]}"
    now = utc_now()
    stale = Lease(model=model, holder="old", token="t" * 32, acquired_at=now - timedelta(seconds=30), expires_at=now)
    assert (
        gallery_store.try_acquire_lease(stale.model_copy(update={"acquired_at": now - timedelta(seconds=30)})) is None
    )
    fresh = Lease(model=model, holder="new", token="n" * 32, acquired_at=now, expires_at=now + timedelta(seconds=60))
    assert gallery_store.try_acquire_lease(fresh) is None
    assert gallery_store.current_lease(model).holder == "new"
