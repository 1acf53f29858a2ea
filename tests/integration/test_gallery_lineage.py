"""Registering a version records lineage in Palette's graph (model version -> features, snapshot) through
the injected sink; a version that reads an unknown feature is refused before anything is written."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from ma_ray.gallery import ArtifactStore, Gallery, InProcessAliasBus, InputSignature, PaletteLineage, VersionSpec
from ma_ray.gallery.store.sqlite import SqliteGalleryStore
from ma_ray.palette.lineage import Direction
from ma_ray.palette.meta_store.sqlite import SqliteMetaStore
from ma_ray.palette.registry import FeatureRegistry, UnknownFeatureError
from ma_ray.palette.repository import load_repository

SAMPLE = resources.files("ma_ray.palette") / "samples" / "rideshare"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Gallery, FeatureRegistry, str]:
    features = FeatureRegistry(SqliteMetaStore(tmp_path / "meta.sqlite"), user="ci")
    repo = load_repository(Path(str(SAMPLE)))
    features.apply(repo)
    ref = features.features(repo.catalog)[0].ref
    gallery = Gallery(
        SqliteGalleryStore(tmp_path / "g.sqlite"),
        ArtifactStore(str(tmp_path / "artifacts")),
        InProcessAliasBus(),
        lineage=PaletteLineage(features),
    )
    gallery.register_model(name="eta", owner="ci", tier=1, framework="other")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"w")
    return gallery, features, ref


def spec_for(gallery: Gallery, tmp_path: Path, refs: tuple[str, ...]) -> VersionSpec:
    published = gallery.artifacts.publish("eta", tmp_path / "m", "other")
    return VersionSpec(
        artifact_uri=published.uri,
        checksum=published.checksum,
        size_bytes=published.size_bytes,
        flavor="other",
        signature=InputSignature(features=refs),
        training_snapshot="2026-11-27",
    )


def test_a_version_with_features_is_linked_into_palette(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gallery, features, ref = setup
    version = gallery.register_version("eta", spec_for(gallery, tmp_path, (ref,)))
    upstream = features.lineage(f"model:eta:{version.version}", Direction.UPSTREAM).nodes()
    assert {ref, "snapshot:2026-11-27"} <= upstream
    assert f"model:eta:{version.version}" in features.lineage(ref, Direction.DOWNSTREAM).nodes()


def test_an_unknown_feature_is_refused_with_nothing_written(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gallery, _, ref = setup
    unknown = ref.rsplit(":", 2)[0] + ":no_such_feature:" + ref.rsplit(":", 1)[1]
    with pytest.raises((UnknownFeatureError, KeyError)):
        gallery.register_version("eta", spec_for(gallery, tmp_path, (unknown,)))
    assert gallery.versions("eta") == []
