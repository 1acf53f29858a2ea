from ma_ray.palette.lineage import walk

GRAPH = {"raw:trips": ["group:a"], "group:a": ["f1", "f2"], "f1": ["f3", "model:m:1"], "f2": ["f3"], "f3": []}


def test_walk_finds_everything_downstream_and_marks_diamonds() -> None:
    tree = walk("raw:trips", lambda n: GRAPH.get(n, []))
    assert tree.nodes() == {"raw:trips", "group:a", "f1", "f2", "f3", "model:m:1"}
    rendered = tree.render()
    assert rendered.splitlines()[0] == "raw:trips"
    lines = [line.split("── ")[-1] for line in rendered.splitlines()]
    assert lines.index("f3 (see above)") > lines.index("f3")  # reached twice: expanded once, first
    assert tree.as_json()["children"][0]["node"] == "group:a"


def test_walk_survives_cycles() -> None:
    cyclic = {"a": ["b"], "b": ["a"]}
    assert walk("a", lambda n: cyclic[n]).nodes() == {"a", "b"}
