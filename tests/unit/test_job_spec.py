"""Job specs: the shipped samples load, and every shape mistake is refused with the field and what to fix."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ma_ray.jobs.clusters import CostClass
from ma_ray.jobs.resources import Resources
from ma_ray.jobs.spec import SpecError, TrainingJobSpec, load_clusters, load_spec, parse_spec
from tests.job_specs import minimal_spec

JOBS_DIR = Path(__file__).resolve().parents[2] / "clusters" / "jobs"


minimal = minimal_spec


def refused(data: Any) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    return caught.value.reasons


@pytest.mark.parametrize("path", sorted(JOBS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_files_load(path: Path) -> None:
    if path.name == "clusters.yaml":
        assert len(load_clusters(path)) >= 1
    else:
        assert isinstance(load_spec(path), TrainingJobSpec)


def test_defaults_and_derived_values() -> None:
    spec = parse_spec(minimal(framework="torch", transforms={"peak": "hour(@basis:request_ts) in [7, 8]"}))
    assert spec.trainer_framework == "pytorch"
    assert spec.feature_columns == ("@palette:rideshare:driver_stats:trip_count_7d:driver_id", "peak")
    assert spec.resources.worker == Resources(1.0, 0.0, 1.0)
    assert spec.data.bounds() == (datetime(2026, 1, 7, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC))
    assert parse_spec(yaml.safe_load(spec.to_yaml())) == spec


def test_unknown_framework_names_the_choices() -> None:
    (reason,) = refused(minimal(framework="lightgbm"))
    assert reason.startswith("framework:") and "'lightgbm'" in reason and "xgboost, torch, deepspeed" in reason


def test_every_problem_is_reported_with_its_field() -> None:
    reasons = refused(minimal(tier=7, features=["trip_count"], resources={"workers": 0}, colour="red"))
    text = "\n".join(reasons)
    assert "tier:" in text and "less than or equal to 4" in text
    assert "features.0" in text or "features:" in text
    assert "resources.workers" in text
    assert "colour: unknown field" in text
    assert len(reasons) == 4


def test_bad_expressions_windows_and_worker_counts() -> None:
    assert any("transforms" in r and "peak" in r for r in refused(minimal(transforms={"peak": "hour(("})))
    assert any("label.value" in r for r in refused(minimal(label={**minimal()["label"], "value": "1 +"})))
    both = refused(minimal(data={"snapshot": "2026-01-06", "start": "2026-01-01T00:00:00Z"}))
    assert any("either snapshot or start/end" in r for r in both)
    assert any("before end" in r for r in refused(minimal(data={"start": "2026-01-02", "end": "2026-01-01"})))
    elastic = refused(minimal(resources={"workers": 2, "min_workers": 3}))
    assert any("min_workers (3) cannot exceed workers (2)" in r for r in elastic)
    zero = refused(minimal(framework="deepspeed", resources={"workers": 2, "min_workers": 1}))
    assert any("a deepspeed job cannot be elastic" in r for r in zero)
    assert any("listed twice" in r for r in refused(minimal(features=[minimal()["features"][0]] * 2)))


def test_files_that_are_missing_or_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(listed)


def test_clusters_file(tmp_path: Path) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {"name": "a", "address": "http://a:8265", "nodes": [{"name": "n", "cpu": 4, "memory_gb": 8}]},
                    {
                        "name": "b",
                        "address": "http://b:8265",
                        "location": "eu",
                        "cost_class": "spot",
                        "nodes": [{"name": "n", "cpu": 8, "gpu": 1, "memory_gb": 32}],
                    },
                ]
            }
        )
    )
    registry = load_clusters(path)
    assert [c.name for c in registry.rank(tier=4)] == ["b", "a"]
    assert registry.get("b").cost_class is CostClass.SPOT
    assert registry.capacity == Resources(12, 1, 40)
    path.write_text(yaml.safe_dump({"clusters": [{"name": "a", "address": "a:8265", "nodes": []}]}))
    with pytest.raises(SpecError) as caught:
        load_clusters(path)
    assert any("address" in r for r in caught.value.reasons) and any("nodes" in r for r in caught.value.reasons)


def test_snapshot_window_is_the_day_the_snapshot_served() -> None:
    start, end = parse_spec(minimal(data={"snapshot": date(2026, 1, 6)})).data.bounds()
    assert (start.date(), end.date()) == (date(2026, 1, 7), date(2026, 1, 8))


def test_a_relative_label_uri_is_taken_from_where_the_spec_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(minimal(label={**minimal()["label"], "uri": "raw"})))
    monkeypatch.chdir(tmp_path)
    assert load_spec("job.yaml").label.uri == str(tmp_path / "raw")
    path.write_text(yaml.safe_dump(minimal(label={**minimal()["label"], "uri": "s3://bucket/raw"})))
    assert load_spec(path).label.uri == "s3://bucket/raw"


def test_the_engine_is_auto_by_default_and_local_only_for_what_one_process_trains() -> None:
    spec = parse_spec(minimal())
    assert (spec.engine, spec.local_below_rows) == ("auto", 10_000_000)
    assert parse_spec(minimal(engine="local", local_below_rows=0)).engine == "local"
    (torch,) = refused(minimal(framework="torch", engine="local"))
    assert torch.startswith("engine:") and "trains xgboost only, not pytorch" in torch
    (gpu,) = refused(minimal(engine="local", resources={"gpus_per_worker": 1}))
    assert "trains on CPUs only" in gpu
    assert any(r.startswith("engine:") for r in refused(minimal(engine="spark")))
    assert any("local_below_rows" in r for r in refused(minimal(local_below_rows=-1)))
