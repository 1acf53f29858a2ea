import pytest
from pydantic import ValidationError

from ma_ray.palette.catalog import Entity, Feature, FeatureGroup, FeatureRef, FeatureRepository, SourceKind
from ma_ray.palette.types import FeatureType

DRIVER = Entity(name="driver", join_key="driver_id")


def group(**overrides: object) -> FeatureGroup:
    values: dict[str, object] = {
        "name": "driver_stats",
        "entity": "driver",
        "owner": "ml",
        "source": SourceKind.BATCH,
        "features": [Feature(name="trip_count_7d", type=FeatureType.INT, default=0)],
    }
    return FeatureGroup(**{**values, **overrides})


def test_refs_are_canonical() -> None:
    request = FeatureGroup(
        name="request", owner="ml", source="request", features=[Feature(name="request_ts", type="timestamp")]
    )
    repo = FeatureRepository(catalog="rideshare", entities=[DRIVER], groups=[group(), request])
    assert set(repo.refs()) == {"@palette:rideshare:driver_stats:trip_count_7d:driver_id", "@basis:request_ts"}
    ref = FeatureRef.parse("@palette:rideshare:driver_stats:trip_count_7d:driver_id")
    assert (ref.catalog, ref.group, ref.feature, ref.join_key) == (
        "rideshare",
        "driver_stats",
        "trip_count_7d",
        "driver_id",
    )
    assert str(ref) == "@palette:rideshare:driver_stats:trip_count_7d:driver_id"


@pytest.mark.parametrize("text", ["@palette:a:b:c", "palette:a:b:c:d", "@palette:a:B:c:d", "@palette:a:b:c:d:e"])
def test_bad_refs(text: str) -> None:
    with pytest.raises(ValueError, match="not a feature reference"):
        FeatureRef.parse(text)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"name": "Driver-Stats"}, "String should match pattern"),
        ({"tier": 5}, "less than or equal to 4"),
        ({"ttl_s": 0}, "greater than 0"),
        ({"entity": None}, "needs an entity"),
        ({"features": []}, "at least 1 item"),
        ({"features": [Feature(name="a", type="int"), Feature(name="a", type="float")]}, "declares feature"),
        ({"source": "hourly"}, "'batch', 'streaming' or 'request'"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_groups(overrides: dict, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        group(**overrides)


def test_feature_default_must_match_type() -> None:
    with pytest.raises(ValidationError, match="default 'x' of feature 'n' is not a int"):
        Feature(name="n", type="int", default="x")
    assert Feature(name="f", type="float", default=1).default == 1


def test_repository_cross_checks() -> None:
    with pytest.raises(ValidationError, match="unknown entity 'rider'"):
        FeatureRepository(catalog="c", entities=[DRIVER], groups=[group(entity="rider")])
    with pytest.raises(ValidationError, match="feature group declared twice: driver_stats"):
        FeatureRepository(catalog="c", entities=[DRIVER], groups=[group(), group()])
    with pytest.raises(ValidationError, match="a join key is a string or an int"):
        Entity(name="e", join_key="k", key_type="float")
