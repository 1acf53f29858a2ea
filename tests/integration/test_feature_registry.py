"""Applying feature repositories: versions, BACKWARD compatibility, lineage, on SQLite and real Cassandra."""

from __future__ import annotations

from importlib import resources

import pytest

from ma_ray.palette.catalog import Feature, FeatureGroup, FeatureRepository
from ma_ray.palette.lineage import Direction
from ma_ray.palette.meta_store import MetaStore
from ma_ray.palette.registry import FeatureRegistry, IncompatibleChangeError, UnknownFeatureError
from ma_ray.palette.repository import load_repository
from ma_ray.palette.types import FeatureType

SAMPLE = resources.files("ma_ray.palette") / "samples" / "rideshare"
RATING = "@palette:rideshare:driver_stats:rating_avg:driver_id"
TRIPS_7D = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"


@pytest.fixture
def sample() -> FeatureRepository:
    with resources.as_file(SAMPLE) as path:
        return load_repository(path)


@pytest.fixture
def registry(meta_store: MetaStore, sample: FeatureRepository) -> FeatureRegistry:
    registry = FeatureRegistry(meta_store, user="test")
    registry.apply(sample)
    return registry


def with_group(repo: FeatureRepository, name: str, **changes: object) -> FeatureRepository:
    groups = tuple(g.model_copy(update=changes) if g.name == name else g for g in repo.groups)
    return repo.model_copy(update={"groups": groups})


def with_features(repo: FeatureRepository, name: str, features: list[Feature]) -> FeatureRepository:
    return with_group(repo, name, features=tuple(features))


def stats(repo: FeatureRepository) -> FeatureGroup:
    return next(g for g in repo.groups if g.name == "driver_stats")


def test_sample_applies_then_is_unchanged(registry: FeatureRegistry, sample: FeatureRepository) -> None:
    report = registry.apply(sample)
    assert report.created == [] and report.updated == []
    assert sorted(report.unchanged) == sorted(g.name for g in sample.groups)
    refs = {row.ref for row in registry.features("rideshare")}
    assert RATING in refs and "@basis:request_ts" in refs
    assert "@palette:rideshare:driver_model_inputs:reliability_score:driver_id" in refs
    assert registry.types("rideshare")["@basis:request_ts"] is FeatureType.TIMESTAMP


def test_adding_a_feature_with_default_makes_a_new_version(
    registry: FeatureRegistry, sample: FeatureRepository
) -> None:
    extra = Feature(name="five_star_share", type=FeatureType.FLOAT, default=0.0)
    report = registry.apply(with_features(sample, "driver_stats", [*stats(sample).features, extra]))
    assert report.updated == ["driver_stats"]
    version, latest = registry.group("rideshare", "driver_stats")
    assert version == 2 and latest.feature("five_star_share").default == 0.0
    _, first = registry.group("rideshare", "driver_stats", version=1)
    assert "five_star_share" not in {f.name for f in first.features}
    assert [v.version for v in registry.versions("rideshare", "driver_stats")] == [1, 2]


def test_adding_without_default_is_refused(registry: FeatureRegistry, sample: FeatureRepository) -> None:
    extra = Feature(name="new_count", type=FeatureType.INT)
    with pytest.raises(IncompatibleChangeError, match=r"driver_stats\.new_count: added without a default"):
        registry.apply(with_features(sample, "driver_stats", [*stats(sample).features, extra]))


def test_removing_a_feature_a_model_uses_is_refused(registry: FeatureRegistry, sample: FeatureRepository) -> None:
    registry.register_model("eta", 3, [RATING, TRIPS_7D], snapshot_id="2026-01-28")
    kept = [f for f in stats(sample).features if f.name != "rating_avg"]
    with pytest.raises(IncompatibleChangeError) as caught:
        registry.apply(with_features(sample, "driver_stats", kept))
    assert "driver_stats.rating_avg: removed while still in use; depended on by model:eta:3" in str(caught.value)
    assert registry.group("rideshare", "driver_stats")[0] == 1  # nothing was written


def test_removing_an_unused_feature_is_allowed(registry: FeatureRegistry, sample: FeatureRepository) -> None:
    kept = [f for f in stats(sample).features if f.name != "avg_trip_distance"]
    assert registry.apply(with_features(sample, "driver_stats", kept)).updated == ["driver_stats"]


def test_type_changes(registry: FeatureRegistry, sample: FeatureRepository) -> None:
    registry.register_model("eta", 3, [RATING])
    features = [
        f.model_copy(update={"type": FeatureType.STRING, "default": None}) if f.name == "rating_avg" else f
        for f in stats(sample).features
    ]
    with pytest.raises(IncompatibleChangeError) as caught:
        registry.apply(with_features(sample, "driver_stats", features))
    assert "rating_avg: type changed from float to string; depended on by model:eta:3" in str(caught.value)
    widened = [
        f.model_copy(update={"type": FeatureType.FLOAT, "default": 0.0}) if f.name == "trip_count_7d" else f
        for f in stats(sample).features
    ]
    assert registry.apply(with_features(sample, "driver_stats", widened)).updated == ["driver_stats"]


def test_derived_feature_errors_are_refused(registry: FeatureRegistry, sample: FeatureRepository) -> None:
    bad_type = Feature(name="oops", type=FeatureType.BOOL, expression=f"{TRIPS_7D} + 1")
    with pytest.raises(IncompatibleChangeError, match="oops: expression gives int, feature is declared bool"):
        registry.apply(with_features(sample, "driver_model_inputs", [bad_type]))
    typo = Feature(
        name="typo", type=FeatureType.FLOAT, expression="@palette:rideshare:driver_stats:rating_avgg:driver_id"
    )
    with pytest.raises(IncompatibleChangeError) as caught:
        registry.apply(with_features(sample, "driver_model_inputs", [typo]))
    assert RATING in str(caught.value)  # the closest existing name is suggested


def test_lineage_both_directions(registry: FeatureRegistry) -> None:
    registry.register_snapshot("driver-2026-01-28", [RATING, TRIPS_7D])
    registry.register_model("eta", 3, [RATING], snapshot_id="driver-2026-01-28")
    down = registry.lineage("raw:trips", Direction.DOWNSTREAM).nodes()
    assert {"group:rideshare:driver_stats", RATING, "snapshot:driver-2026-01-28", "model:eta:3"} <= down
    assert "@palette:rideshare:driver_model_inputs:log_trip_count_7d:driver_id" in down
    up = registry.lineage("model:eta:3", Direction.UPSTREAM)
    assert {"raw:trips", "group:rideshare:driver_stats", RATING} <= up.nodes()
    assert "└── " in up.render() and up.as_json()["node"] == "model:eta:3"


def test_unknown_references(registry: FeatureRegistry) -> None:
    with pytest.raises(UnknownFeatureError, match="groups of 'rideshare'"):
        registry.group("rideshare", "nope")
    with pytest.raises(UnknownFeatureError, match="no feature 'nope'"):
        registry.register_model("eta", 1, ["@palette:rideshare:driver_stats:nope:driver_id"])
