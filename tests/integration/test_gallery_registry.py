"""Gallery's behaviour, identical on embedded SQLite and on the real Cassandra: models, versions, artifacts,
aliases with history and rollback, bad input refused with nothing written, deployments."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from ma_ray.gallery import (
    AliasConflictError,
    ArtifactStore,
    ChecksumMismatchError,
    CorruptArtifactError,
    Deployer,
    DeploymentFailedError,
    DeploymentStatus,
    Gallery,
    GalleryError,
    InProcessAliasBus,
    InputSignature,
    ModelExistsError,
    NothingToRollBackError,
    UnknownAliasError,
    UnknownModelError,
    UnknownVersionError,
    VersionSpec,
)
from ma_ray.gallery.store import GalleryStore

FEATURES = ("@palette:rideshare:driver_stats:trip_count_7d:driver_id", "@basis:hour")


@pytest.fixture
def gallery(gallery_store: GalleryStore, tmp_path: Path) -> Iterator[Gallery]:
    bus = InProcessAliasBus()
    yield Gallery(gallery_store, ArtifactStore(str(tmp_path / "artifacts")), bus, user="alice")
    bus.close()


@pytest.fixture
def name() -> str:
    return f"eta_{uuid.uuid4().hex[:8]}"


def booster(seed: int = 0):
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.random((64, 3))
    return xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(x, label=x.sum(axis=1)), num_boost_round=3)


def registered(gallery: Gallery, name: str, versions: int = 2) -> None:
    gallery.register_model(name=name, owner="maps", tier=1, framework="xgboost", tags={"team": "eta"})
    for seed in range(versions):
        gallery.log_model(name, booster(seed), metrics={"rmse": 1.0 + seed})


def test_models_register_idempotently_and_refuse_conflicting_metadata(gallery: Gallery, name: str) -> None:
    first = gallery.register_model(name=name, owner="maps", tier=2, framework="xgboost", description="ETA")
    again = gallery.register_model(name=name, owner="maps", tier=2, framework="xgboost", description="ETA")
    assert again == first
    with pytest.raises(ModelExistsError, match="different metadata"):
        gallery.register_model(name=name, owner="eats", tier=2, framework="xgboost")
    assert gallery.model(name).owner == "maps"
    assert name in [m.name for m in gallery.models()]


def test_versions_are_numbered_immutable_and_carry_their_record(gallery: Gallery, name: str) -> None:
    gallery.register_model(name=name, owner="maps", tier=1, framework="xgboost")
    signature = InputSignature(features=FEATURES, transforms={"busy": "@basis:hour >= 17"})
    v1 = gallery.log_model(
        name,
        booster(),
        signature=signature,
        params={"max_depth": 2},
        metrics={"rmse": 1.5},
        training_job_id="job-1",
        training_snapshot="2026-11-27",
        tags={"stage": "candidate"},
    )
    v2 = gallery.log_model(name, booster(1))
    assert (v1.version, v2.version) == (1, 2)
    assert v1.model_id == f"{name}:1"
    assert gallery.version(name, 1) == v1
    assert gallery.version(name, "latest") == v2
    assert [v.version for v in gallery.versions(name)] == [1, 2]
    assert gallery.version(name, 1).signature.transforms == {"busy": "@basis:hour >= 17"}
    with pytest.raises(ValueError, match="frozen"):
        v1.metrics = {}  # type: ignore[misc]


def test_loading_verifies_and_returns_the_model(gallery: Gallery, name: str) -> None:
    import xgboost as xgb

    registered(gallery, name, versions=1)
    model = gallery.load(name, 1)
    x = xgb.DMatrix(np.random.default_rng(0).random((4, 3)))
    assert np.allclose(model.predict(x), booster(0).predict(x))


def test_a_corrupted_artifact_is_detected_and_never_loaded(gallery: Gallery, name: str) -> None:
    registered(gallery, name, versions=1)
    version = gallery.version(name, 1)
    data = Path(version.artifact_uri) / "model.ubj"
    data.write_bytes(data.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CorruptArtifactError, match=r"model\.ubj.*will not be loaded"):
        gallery.load(name, 1)


def test_bad_registrations_are_refused_and_write_nothing(gallery: Gallery, name: str, tmp_path: Path) -> None:
    registered(gallery, name, versions=1)
    good = gallery.version(name, 1)
    spec = VersionSpec(**good.model_dump(include=set(VersionSpec.model_fields)))
    wrong = spec.model_copy(update={"checksum": "sha256:" + "0" * 64})
    with pytest.raises(ChecksumMismatchError, match="not sha256:0000"):
        gallery.register_version(name, wrong)
    with pytest.raises(UnknownModelError, match="no model 'nobody'"):
        gallery.register_version("nobody", spec)
    with pytest.raises(GalleryError, match="invalid model name"):
        gallery.register_version("Bad-Name", spec)
    with pytest.raises(CorruptArtifactError, match="no readable"):
        gallery.register_version(name, spec.model_copy(update={"artifact_uri": str(tmp_path / "missing")}))
    assert [v.version for v in gallery.versions(name)] == [1]


def test_resolution_by_number_alias_and_latest_with_clear_errors(gallery: Gallery, name: str) -> None:
    registered(gallery, name)
    gallery.set_alias(name, "production", 1, expected=None)
    assert gallery.resolve(name, "production") == 1
    assert gallery.resolve(name, "2") == 2
    assert gallery.resolve(name, "latest") == 2
    with pytest.raises(UnknownVersionError, match="no version 7"):
        gallery.resolve(name, 7)
    with pytest.raises(UnknownAliasError, match="aliases: production"):
        gallery.resolve(name, "staging")
    with pytest.raises(UnknownModelError):
        gallery.resolve("nobody", "production")


def test_set_alias_is_compare_and_set_with_history(gallery: Gallery, name: str) -> None:
    registered(gallery, name)
    first = gallery.set_alias(name, "production", 1, expected=None)
    second = gallery.set_alias(name, "production", 2, expected=1, reason="better rmse")
    with pytest.raises(AliasConflictError, match="expected version 1, it is version 2"):
        gallery.set_alias(name, "production", 1, expected=1)
    with pytest.raises(AliasConflictError, match="expected unset"):
        gallery.set_alias(name, "production", 1, expected=None)
    history = gallery.alias_history(name, "production")
    assert [(e.seq, e.from_version, e.to_version, e.by) for e in history] == [(1, None, 1, "alice"), (2, 1, 2, "alice")]
    assert history == [first, second]
    assert gallery.aliases(name) == {"production": 2}


def test_alias_at_answers_what_was_production_at_time_t(gallery: Gallery, name: str) -> None:
    registered(gallery, name)
    first = gallery.set_alias(name, "production", 1)
    time.sleep(0.005)  # history times are milliseconds (Cassandra): two changes in one ms are simultaneous
    second = gallery.set_alias(name, "production", 2)
    assert gallery.alias_at(name, "production", first.at - timedelta(seconds=1)) is None
    assert gallery.alias_at(name, "production", first.at) == 1
    assert gallery.alias_at(name, "production", second.at + timedelta(days=1)) == 2


def test_rollback_restores_the_previous_version_in_one_call(gallery: Gallery, name: str) -> None:
    registered(gallery, name)
    gallery.set_alias(name, "production", 1)
    with pytest.raises(NothingToRollBackError):
        gallery.rollback(name, "production")
    gallery.set_alias(name, "production", 2)
    event = gallery.rollback(name, "production")
    assert gallery.resolve(name, "production") == 1
    assert (event.from_version, event.to_version, event.reason) == (2, 1, "rollback of #2")
    assert [e.to_version for e in gallery.alias_history(name, "production")] == [1, 2, 1]


def test_illegal_alias_names_unknown_versions_and_models_write_nothing(gallery: Gallery, name: str) -> None:
    registered(gallery, name, versions=1)
    for bad in ("Production", "prod-1", "1st", "latest", "a b", ""):
        with pytest.raises(GalleryError):
            gallery.set_alias(name, bad, 1)
    with pytest.raises(UnknownVersionError, match="no version 9"):
        gallery.set_alias(name, "production", 9)
    with pytest.raises(UnknownModelError):
        gallery.set_alias("nobody", "production", 1)
    assert gallery.aliases(name) == {}
    assert gallery.alias_history(name, "production") == []


def test_removing_an_alias_is_recorded(gallery: Gallery, name: str) -> None:
    registered(gallery, name, versions=1)
    gallery.set_alias(name, "staging", 1)
    gallery.set_alias(name, "staging", None, expected=1)
    assert gallery.aliases(name) == {}
    with pytest.raises(UnknownAliasError):
        gallery.resolve(name, "staging")
    assert [e.to_version for e in gallery.alias_history(name, "staging")] == [1, None]


def test_every_alias_change_is_broadcast(gallery: Gallery, name: str) -> None:
    registered(gallery, name)
    cache = gallery.cached_resolver("replica-a", ttl_s=3600)
    gallery.set_alias(name, "production", 1)
    assert cache.get(name, "production") == 1
    event = gallery.set_alias(name, "production", 2)
    assert gallery.wait_for_propagation(event.event_id, timeout_s=10).complete
    assert cache.get(name, "production") == 2


def test_deployment_goes_live_and_moves_the_alias(gallery: Gallery, name: str) -> None:
    registered(gallery, name)
    gallery.set_alias(name, "production", 1)
    loaded = []
    deployment = Deployer(gallery).deploy(name, 2, loaded.append, alias="production")
    assert [v.version for v in loaded] == [2]
    assert (deployment.status, deployment.previous_version) == (DeploymentStatus.LIVE, 1)
    assert gallery.resolve(name, "production") == 2
    assert Deployer(gallery).live(name) == deployment
    assert gallery.store.current_lease(name) is None


def test_a_failed_load_rolls_back_and_production_stays(gallery: Gallery, name: str) -> None:
    registered(gallery, name)
    gallery.set_alias(name, "production", 1)

    def broken(version: object) -> None:
        raise RuntimeError("out of GPU memory")

    deployer = Deployer(gallery)
    with pytest.raises(DeploymentFailedError, match="stays at version 1"):
        deployer.deploy(name, 2, broken)
    assert gallery.resolve(name, "production") == 1
    [record] = deployer.history(name)
    assert (record.status, record.reason) == (DeploymentStatus.ROLLED_BACK, "RuntimeError: out of GPU memory")
    assert deployer.live(name) is None
