from ma_ray.palette.catalog import Feature, FeatureGroup
from ma_ray.palette.compatibility import check_backward

OLD = FeatureGroup(
    name="g",
    entity="driver",
    owner="ml",
    source="batch",
    features=[Feature(name="a", type="int", default=0), Feature(name="b", type="float", default=0.0)],
)


def change(*features: Feature, entity: str = "driver") -> FeatureGroup:
    return OLD.model_copy(update={"features": tuple(features), "entity": entity})


def no_users(_: str) -> list[str]:
    return []


def test_compatible_changes() -> None:
    assert check_backward(OLD, OLD, no_users) == []
    added = change(*OLD.features, Feature(name="c", type="string", default=""))
    assert check_backward(OLD, added, no_users) == []
    widened = change(Feature(name="a", type="float", default=0.0), OLD.features[1])
    assert check_backward(OLD, widened, no_users) == []
    assert check_backward(OLD, change(OLD.features[0]), no_users) == []  # b removed, nobody uses it


def test_incompatible_changes_say_why_and_who() -> None:
    def users(name: str) -> list[str]:
        return ["model:eta:3"] if name == "b" else []

    [removed] = check_backward(OLD, change(OLD.features[0]), users)
    assert str(removed) == "g.b: removed while still in use; depended on by model:eta:3"
    [narrowed] = check_backward(OLD, change(OLD.features[0], Feature(name="b", type="int", default=0)), users)
    assert str(narrowed) == "g.b: type changed from float to int; depended on by model:eta:3"
    [no_default] = check_backward(OLD, change(*OLD.features, Feature(name="c", type="int")), users)
    assert str(no_default) == "g.c: added without a default value"
    [moved] = check_backward(OLD, change(*OLD.features, entity="rider"), users)
    assert "entity changed from 'driver' to 'rider'" in str(moved)
