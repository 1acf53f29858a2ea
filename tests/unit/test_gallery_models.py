"""Gallery's pure logic: names, record validation, factory references, the alias cache, manifests."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ma_ray.gallery import AliasCache, AliasChange, GalleryError, InputSignature, ModelSpec, UnsafeFactoryError
from ma_ray.gallery.artifacts import Manifest
from ma_ray.gallery.flavors.factory import factory_reference, resolve_factory
from ma_ray.gallery.models import TRANSITIONS, DeploymentStatus
from ma_ray.gallery.names import check_alias_name, check_model_name
from ma_ray.storage import FileEntry


@pytest.mark.parametrize("name", ["eta", "eta_v2", "a" * 63])
def test_good_names(name: str) -> None:
    assert check_model_name(name) == name
    assert check_alias_name(name) == name


@pytest.mark.parametrize("name", ["", "ETA", "eta-v2", "2eta", "a" * 64, "eta v2", "eta;drop", None])
def test_bad_names_say_what_is_allowed(name: object) -> None:
    with pytest.raises(GalleryError, match="lower-case identifier"):
        check_model_name(name)  # type: ignore[arg-type]
    with pytest.raises(GalleryError, match="lower-case identifier"):
        check_alias_name(name)  # type: ignore[arg-type]


def test_latest_is_reserved() -> None:
    with pytest.raises(GalleryError, match="reserved"):
        check_alias_name("latest")


def test_model_spec_validates_tier_and_framework() -> None:
    ModelSpec(name="eta", owner="maps", tier=4, framework="pytorch")
    with pytest.raises(ValidationError, match="tier"):
        ModelSpec(name="eta", owner="maps", tier=5, framework="pytorch")
    with pytest.raises(ValidationError, match="framework"):
        ModelSpec(name="eta", owner="maps", tier=1, framework="caffe")
    with pytest.raises(ValidationError, match="name"):
        ModelSpec(name="Eta", owner="maps", tier=1, framework="xgboost")


def test_signature_checks_refs_and_transform_syntax() -> None:
    ok = InputSignature(
        features=("@palette:rideshare:driver_stats:rating_avg:driver_id", "@basis:hour"),
        transforms={"night": "@basis:hour >= 22"},
    )
    assert ok.palette_refs == ["@palette:rideshare:driver_stats:rating_avg:driver_id"]
    with pytest.raises(ValidationError, match="not a feature reference"):
        InputSignature(features=("rating_avg",))
    with pytest.raises(ValidationError, match="twice"):
        InputSignature(features=("@basis:hour", "@basis:hour"))
    with pytest.raises(ValidationError, match="transform 'bad'"):
        InputSignature(transforms={"bad": "1 +"})


def test_deployments_only_move_forward() -> None:
    assert TRANSITIONS[DeploymentStatus.PENDING] == {DeploymentStatus.LOADING, DeploymentStatus.ROLLED_BACK}
    assert not TRANSITIONS[DeploymentStatus.LIVE]
    assert not TRANSITIONS[DeploymentStatus.ROLLED_BACK]


def test_factory_references_resolve_importable_callables_only() -> None:
    assert resolve_factory("collections:OrderedDict") is __import__("collections").OrderedDict
    assert factory_reference(check_model_name) == "ma_ray.gallery.names:check_model_name"
    for bad in ("os:system", "subprocess:run", "builtins:eval", "collections:_private", "x.y", "a:b:c", "eval(1)"):
        with pytest.raises(UnsafeFactoryError):
            resolve_factory(bad)
    with pytest.raises(UnsafeFactoryError, match="cannot import"):
        resolve_factory("no_such_module_xyz:make")
    with pytest.raises(UnsafeFactoryError, match="no callable"):
        resolve_factory("collections:nothing_here")
    with pytest.raises(UnsafeFactoryError, match="not importable"):
        factory_reference(lambda: None)


def test_manifest_checksum_pins_every_file() -> None:
    one = Manifest("xgboost", {"a": 1}, (FileEntry("model.ubj", 10, "ab" * 32),))
    assert Manifest.from_bytes(one.to_bytes()) == one
    assert one.checksum.startswith("sha256:") and len(one.checksum) == 71
    changed = Manifest("xgboost", {"a": 1}, (FileEntry("model.ubj", 11, "ab" * 32),))
    assert changed.checksum != one.checksum


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_alias_cache_expires_after_its_ttl_and_on_invalidation() -> None:
    clock, store, calls = FakeClock(), {"v": 1}, []

    def resolve(model: str, alias: str) -> int:
        calls.append((model, alias))
        return store["v"]

    cache = AliasCache(resolve, ttl_s=1.0, clock=clock)
    assert cache.get("eta", "production") == 1
    store["v"] = 2
    assert cache.get("eta", "production") == 1
    clock.now = 1.5
    assert cache.get("eta", "production") == 2
    store["v"] = 3
    cache.on_change(AliasChange("eta", "production", 3, 3))
    assert cache.get("eta", "production") == 3
    assert (cache.hits, cache.misses, len(calls)) == (1, 3, 3)


def test_alias_cache_does_not_keep_a_resolution_that_raced_an_invalidation() -> None:
    cache: AliasCache

    def resolve(model: str, alias: str) -> int:
        cache.invalidate(model, alias)  # the change lands while this (now stale) read is in flight
        return 1

    cache = AliasCache(resolve, ttl_s=60)
    cache.get("eta", "production")
    assert cache.misses == 1
    cache.get("eta", "production")
    assert cache.misses == 2
