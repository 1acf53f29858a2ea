from pathlib import Path

import pytest

from ma_ray.palette.repository import RepositoryError, load_repository

YAML = """
catalog: rideshare
entities: [{name: driver, join_key: driver_id}]
groups:
  - name: driver_stats
    entity: driver
    owner: ml
    source: batch
    features: [{name: trip_count_7d, type: int, default: 0}]
"""

PYTHON = """
from ma_ray.palette.catalog import Entity, Feature, FeatureGroup, FeatureRepository

repository = FeatureRepository(
    catalog="rideshare",
    entities=[Entity(name="driver", join_key="driver_id")],
    groups=[FeatureGroup(name="driver_stats", entity="driver", owner="ml", source="batch",
                         features=[Feature(name="trip_count_7d", type="int", default=0)])],
)
"""


def test_yaml_and_python_load_into_the_same_models(tmp_path: Path) -> None:
    (tmp_path / "repo.yaml").write_text(YAML)
    (tmp_path / "repo.py").write_text(PYTHON)
    assert load_repository(tmp_path / "repo.yaml") == load_repository(tmp_path / "repo.py")
    assert load_repository(tmp_path) == load_repository(tmp_path / "repo.py")


def test_files_of_a_folder_merge(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("catalog: rideshare\nentities: [{name: driver, join_key: driver_id}]\n")
    (tmp_path / "b.yml").write_text(YAML.replace("entities: [{name: driver, join_key: driver_id}]", ""))
    assert [g.name for g in load_repository(tmp_path).groups] == ["driver_stats"]


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"a.yaml": "catalog: [unclosed"}, "is not valid YAML"),
        ({"a.yaml": "- a list"}, "must hold a mapping"),
        ({"a.yaml": "entities: []"}, "declares `catalog: <name>`"),
        ({"a.yaml": "catalog: x\nfeatures: []"}, "unknown top-level key"),
        ({"a.yaml": "catalog: x", "b.yaml": "catalog: y"}, "declares catalog 'y'"),
        ({"a.yaml": YAML.replace("type: int", "type: integer")}, "groups.0.features.0.type"),
        ({"r.py": "repository = 3"}, "must define `repository"),
    ],
)
def test_bad_repositories_say_what_and_where(tmp_path: Path, files: dict[str, str], fragment: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    target = tmp_path / "r.py" if "r.py" in files else tmp_path
    with pytest.raises(RepositoryError, match=fragment):
        load_repository(target)


def test_empty_or_odd_paths(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match=r"holds no \.yaml files"):
        load_repository(tmp_path)
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(RepositoryError, match="not a folder"):
        load_repository(tmp_path / "x.txt")
