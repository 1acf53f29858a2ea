import pytest
from hypothesis import given
from hypothesis import strategies as st

from ma_ray.jobs.clusters import Cluster, ClusterRegistry, CostClass, Node, preferred_cost_class
from ma_ray.jobs.resources import Resources


def make(name: str, location: str, cost: CostClass, cpu: float = 10) -> Cluster:
    return Cluster(name, f"http://{name}:8265", location, cost, (Node("n0", Resources(cpu, 0, 100)),))


REGISTRY = ClusterRegistry(
    [
        make("west-od", "west", CostClass.ON_DEMAND),
        make("east-spot", "east", CostClass.SPOT),
        make("east-od", "east", CostClass.ON_DEMAND),
        make("west-spot", "west", CostClass.SPOT),
    ]
)


def names(clusters: list[Cluster]) -> list[str]:
    return [c.name for c in clusters]


def test_tiers_three_and_four_prefer_spot_one_and_two_on_demand() -> None:
    assert [preferred_cost_class(t) for t in (1, 2, 3, 4)] == [CostClass.ON_DEMAND] * 2 + [CostClass.SPOT] * 2


def test_rank_puts_data_locality_before_cost_class() -> None:
    assert names(REGISTRY.rank(1, "east")) == ["east-od", "east-spot", "west-od", "west-spot"]
    assert names(REGISTRY.rank(4, "east")) == ["east-spot", "east-od", "west-spot", "west-od"]
    assert names(REGISTRY.rank(4)) == ["east-spot", "west-spot", "west-od", "east-od"]


def test_select_skips_clusters_without_capacity() -> None:
    used = {"east-od": Resources(9, 0, 0)}
    assert REGISTRY.select(Resources(2, 0, 10), 2, used, "east").name == "east-spot"
    assert REGISTRY.select(Resources(11, 0, 0), 2, used) is None


def test_select_keeps_headroom_from_lower_tiers_only() -> None:
    registry = ClusterRegistry([make("only", "east", CostClass.ON_DEMAND)])
    used = {"only": Resources(8, 0, 0)}
    assert registry.select(Resources(2, 0, 0), 2, used, headroom=0.1) is None
    assert registry.select(Resources(2, 0, 0), 1, used, headroom=0.1).name == "only"


def test_registry_errors_are_clear() -> None:
    registry = ClusterRegistry([make("a", "east", CostClass.SPOT)])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(make("a", "west", CostClass.SPOT))
    with pytest.raises(KeyError, match="unknown cluster 'b'; registered: a"):
        registry.get("b")
    assert len(registry) == 1 and registry.get("a").capacity == Resources(10, 0, 100)
    with pytest.raises(ValueError, match="no nodes"):
        Cluster("empty", "http://x", "east", CostClass.SPOT, ())


@given(st.lists(st.tuples(st.floats(0, 64), st.floats(0, 8), st.floats(0, 512)), min_size=1, max_size=8))
def test_cluster_capacity_is_the_sum_of_its_nodes(shapes: list[tuple[float, float, float]]) -> None:
    nodes = tuple(Node(f"n{i}", Resources(*s)) for i, s in enumerate(shapes))
    total = Cluster("c", "http://c", "east", CostClass.SPOT, nodes).capacity
    assert total.cpu == pytest.approx(sum(s[0] for s in shapes))
    assert total.memory_gb == pytest.approx(sum(s[2] for s in shapes))
