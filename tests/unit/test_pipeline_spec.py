"""Aggregation declarations in the catalog and the pipeline generator: what is accepted, what is refused."""

from __future__ import annotations

from datetime import date
from importlib import resources

import pyarrow as pa
import pytest
from pydantic import ValidationError

from ma_ray.datagen.rideshare import TRIP_SCHEMA
from ma_ray.palette.catalog import Aggregation, Feature, FeatureGroup, FeatureRepository, window_seconds
from ma_ray.palette.pipelines import PipelineError, RawSchemaError, generate_pipelines
from ma_ray.palette.repository import load_repository

SAMPLE = resources.files("ma_ray.palette") / "samples" / "rideshare"
RAW = TRIP_SCHEMA.remove(TRIP_SCHEMA.get_field_index("date"))


@pytest.fixture(scope="module")
def sample() -> FeatureRepository:
    with resources.as_file(SAMPLE) as path:
        return load_repository(path)


def _repo(*features: Feature, raw_source: str | None = "trips", source: str = "batch") -> FeatureRepository:
    return FeatureRepository(
        catalog="c",
        entities=[{"name": "driver", "join_key": "driver_id"}],
        groups=[
            FeatureGroup(
                name="g", entity="driver", owner="o", source=source, raw_source=raw_source, features=list(features)
            )
        ],
    )


def _agg(name: str, kind: str = "float", **aggregation: object) -> Feature:
    return Feature(name=name, type=kind, aggregation={"window": "7d", **aggregation})


def test_windows() -> None:
    assert [window_seconds(w) for w in ("1h", "1d", "7d", "28d", "15m")] == [3600, 86_400, 604_800, 2_419_200, 900]
    for bad in ("0d", "7w", "d", "1.5h", "-1d"):
        with pytest.raises(ValidationError):
            Aggregation(function="count", window=bad)


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ({"name": "f", "type": "int", "aggregation": {"function": "median", "window": "1d"}}, "function"),
        ({"name": "f", "type": "float", "aggregation": {"function": "mean", "window": "1d"}}, "needs a raw `column`"),
        (
            {
                "name": "f",
                "type": "float",
                "aggregation": {"function": "sum", "column": "a", "value": "1", "window": "1d"},
            },
            "not both",
        ),
        (
            {"name": "f", "type": "int", "aggregation": {"function": "count", "filter": "@basis:x ==", "window": "1d"}},
            "not a valid DSL expression",
        ),
        ({"name": "f", "type": "string", "aggregation": {"function": "count", "window": "1d"}}, "must be int"),
        ({"name": "f", "type": "int", "aggregation": {"function": "mean", "column": "a", "window": "1d"}}, "float"),
        (
            {"name": "f", "type": "int", "expression": "1", "aggregation": {"function": "count", "window": "1d"}},
            "both an expression and an aggregation",
        ),
    ],
)
def test_feature_refuses_bad_aggregations(feature: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Feature.model_validate(feature)


def test_aggregations_need_a_raw_source() -> None:
    with pytest.raises(ValidationError, match="no raw_source"):
        _repo(_agg("f", function="count", kind="int"), raw_source=None)


def test_sample_generates_batch_and_streaming_plans(sample: FeatureRepository) -> None:
    pipelines = generate_pipelines(sample)
    assert [p.group for p in pipelines.batch] == ["driver_stats", "rider_stats"]
    assert [p.group for p in pipelines.streaming] == ["driver_realtime"]
    assert set(pipelines.skipped) == {"driver_model_inputs", "request"}
    driver = pipelines.plan("driver_stats")
    assert (driver.raw_source, driver.time_column, driver.join_key, driver.max_window_s) == (
        "trips",
        "requested_at",
        "driver_id",
        7 * 86_400,
    )
    assert [a.feature for a in driver.aggregations] == [f.name for f in sample.groups[0].features]
    assert driver.partition_dates(date(2026, 1, 7)) == [date(2026, 1, d) for d in range(1, 8)]
    bound = driver.bind(RAW)
    assert bound.columns == sorted(
        {"driver_id", "requested_at", "driver_rating", "driver_accepted", "status", "distance_km"}
    )
    with pytest.raises(PipelineError, match="no pipeline"):
        pipelines.plan("request")


def test_half_declared_group_is_refused() -> None:
    repo = _repo(_agg("a", function="count", kind="int"), Feature(name="b", type="int", default=0))
    with pytest.raises(PipelineError, match="feature\\(s\\) b declare no aggregation"):
        generate_pipelines(repo)


def test_unknown_raw_table_needs_a_time_column() -> None:
    with pytest.raises(PipelineError, match=r"set aggregation\.time_column"):
        generate_pipelines(_repo(_agg("a", function="count", kind="int"), raw_source="payments"))


@pytest.mark.parametrize(
    ("feature", "column"),
    [
        (_agg("f", function="mean", column="tip_usd"), "'tip_usd'"),
        (_agg("f", kind="int", function="count", filter='@basis:state == "x"'), "@basis:state"),
        (_agg("f", kind="int", function="count", filter="@basis:distance_km"), "gives float, not bool"),
        (_agg("f", function="mean", column="status"), "mean cannot aggregate string"),
        (_agg("f", kind="string", function="max", column="distance_km"), "declared string"),
    ],
)
def test_binding_names_the_column(feature: Feature, column: str) -> None:
    plan = generate_pipelines(_repo(feature)).plan("g")
    with pytest.raises(PipelineError, match=column):
        plan.bind(RAW)


def test_binding_checks_key_and_time_columns() -> None:
    plan = generate_pipelines(_repo(_agg("f", kind="int", function="count"))).plan("g")
    with pytest.raises(RawSchemaError, match="'requested_at'"):
        plan.bind(RAW.remove(RAW.get_field_index("requested_at")))
    with pytest.raises(RawSchemaError, match="'driver_id'"):
        plan.bind(RAW.set(RAW.get_field_index("driver_id"), pa.field("driver_id", pa.float64())))


def test_result_types() -> None:
    repo = _repo(
        _agg("s_int", kind="int", function="sum", column="duration_s"),
        _agg("s_float", function="sum", column="fare_usd"),
        _agg("n_float", function="count"),
        _agg("last_status", kind="string", function="last", column="status"),
        _agg("first_ts", kind="timestamp", function="min", column="requested_at"),
        _agg("riders", kind="int", function="distinct_count", column="rider_id"),
    )
    bound = generate_pipelines(repo).plan("g").bind(RAW)
    assert [str(a.result_type) for a in bound.aggregations] == ["int", "float", "int", "string", "timestamp", "int"]
