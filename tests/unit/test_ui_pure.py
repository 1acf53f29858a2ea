"""The web UI's pure parts: lineage layout, training curve, CSRF check, latency quantiles, schema diff."""

from __future__ import annotations

import pytest

from ma_ray.palette.lineage import LineageTree
from ma_ray.ui import csrf_problem, latency_table, layout, quantile, schema_diff, staleness_table, training_curve
from ma_ray.ui.graph import COLUMN_WIDTH_PX, ROW_HEIGHT_PX

pytestmark = pytest.mark.unit


def test_lineage_layout_puts_each_hop_in_a_column_and_each_node_once() -> None:
    shared = LineageTree("snapshot:s1")
    tree = LineageTree(
        "raw:trips",
        [
            LineageTree("group:r:a", [shared, LineageTree("@palette:r:a:x:driver_id")]),
            LineageTree("group:r:b", [LineageTree("snapshot:s1", repeated=True)]),
        ],
    )
    graph = layout(tree)
    placed = {n.node: n for n in graph.nodes}
    assert len(graph.nodes) == 5 and len(graph.edges) == 5  # the diamond's node once, both its edges
    assert placed["raw:trips"].x + COLUMN_WIDTH_PX == placed["group:r:a"].x == placed["group:r:b"].x
    assert placed["group:r:b"].y - placed["group:r:a"].y == ROW_HEIGHT_PX
    assert {n.kind for n in graph.nodes} == {"raw", "group", "snapshot", "feature"}
    assert (placed["group:r:b"], placed["snapshot:s1"]) in graph.edges
    assert graph.width > placed["snapshot:s1"].x and graph.height > placed["group:r:b"].y
    labels = {n.node: n.label for n in graph.nodes}
    assert labels["@palette:r:a:x:driver_id"] == "a.x" and labels["group:r:a"] == "r.a"
    assert labels["raw:trips"] == "trips" and labels["snapshot:s1"] == "s1"


def test_training_curve_scales_every_metric_into_the_box() -> None:
    history = [{"step": 1.0, "train-rmse": 4.0, "valid-rmse": 5.0}, {"step": 3.0, "train-rmse": 2.0, "valid-rmse": 3.0}]
    chart = training_curve(history)
    assert chart is not None and chart.steps == (1.0, 3.0) and chart.values == (2.0, 5.0)
    train = next(s for s in chart.series if s.metric == "train-rmse")
    (x0, y0), (x1, y1) = (tuple(map(float, p.split(","))) for p in train.points.split())
    assert (x0, x1) == (chart.pad, chart.width - chart.pad)  # first and last step at the box's edges
    assert y1 > y0 and (train.first, train.last) == (4.0, 2.0)  # a lower value is drawn lower
    assert training_curve(history[:1]) is None and training_curve([{"step": 1}, {"step": 2, "x": float("nan")}]) is None


def test_csrf_needs_the_cookies_token_and_a_same_origin() -> None:
    assert csrf_problem("t0k", "t0k", "http://127.0.0.1:8300", "127.0.0.1:8300") is None
    assert csrf_problem("t0k", "t0k", None, "127.0.0.1:8300") is None  # no Origin (an old browser): the token decides
    assert "does not match" in str(csrf_problem("t0k", "other", None, "h"))
    assert "does not match" in str(csrf_problem(None, "t0k", None, "h"))
    assert "does not match" in str(csrf_problem("t0k", "", None, "h"))
    assert "its own pages" in str(csrf_problem("t0k", "t0k", "https://evil.example", "127.0.0.1:8300"))


EXPOSITION = """# HELP ray_ma_ray_prediction_stage_seconds Latency of one stage
# TYPE ray_ma_ray_prediction_stage_seconds histogram
ray_ma_ray_prediction_stage_seconds_bucket{stage="parsing",pool="",le="0.001"} 50.0
ray_ma_ray_prediction_stage_seconds_bucket{stage="parsing",pool="",le="0.002"} 90.0
ray_ma_ray_prediction_stage_seconds_bucket{stage="parsing",pool="",le="0.004"} 100.0
ray_ma_ray_prediction_stage_seconds_bucket{stage="parsing",pool="",le="+Inf"} 100.0
ray_ma_ray_prediction_stage_seconds_count{stage="parsing",pool=""} 100.0
ray_ma_ray_prediction_stage_seconds_sum{stage="parsing",pool=""} 0.12
"""


def test_latency_quantiles_as_prometheus_histogram_quantile_computes_them() -> None:
    # another endpoint (a second node) adds its counts to the same stage
    other = EXPOSITION.replace("50.0", "0.0").replace("90.0", "0.0").replace("100.0", "0.0")
    [(stage, count, (p50, p95, p99))] = latency_table([EXPOSITION, other])
    assert (stage, count) == ("parsing", 100)
    assert p50 == pytest.approx(1.0)  # the 50th of 100 at the first bucket's top
    assert p95 == pytest.approx(3.0)  # halfway through the (2, 4] ms bucket
    assert p99 == pytest.approx(3.8)
    assert quantile(0.5, {float("inf"): 0.0}) is None
    assert quantile(0.99, {0.001: 1.0, float("inf"): 10.0}) == pytest.approx(0.001)  # past the last bound
    staleness = EXPOSITION.replace("prediction_stage_seconds", "feature_staleness_seconds").replace(
        'stage="parsing",pool=""', 'group="rideshare.driver_stats"'
    )
    [(count, (p50, _, _))] = staleness_table([staleness]).values()
    assert count == 100 and p50 == pytest.approx(0.001)  # seconds


def test_latency_quantiles_read_the_gauges_a_ray_worker_exports_alike() -> None:
    # A Ray worker's histogram reaches the endpoint as gauges of its series (`ma_ray.gauge_histogram`).
    gauges = EXPOSITION.replace(
        "# TYPE ray_ma_ray_prediction_stage_seconds histogram",
        "# TYPE ray_ma_ray_prediction_stage_seconds_bucket gauge",
    ).replace("# HELP ray_ma_ray_prediction_stage_seconds ", "# HELP ray_ma_ray_prediction_stage_seconds_bucket ")
    assert "histogram" not in gauges
    assert latency_table([gauges]) == latency_table([EXPOSITION])
    [(_, count, (p50, _, _))] = latency_table([gauges])
    assert count == 100 and p50 == pytest.approx(1.0)


def test_schema_diff_names_each_added_removed_and_changed_feature() -> None:
    before = {"features": [{"name": "a", "type": "int"}, {"name": "b", "type": "float", "default": 0.0}]}
    after = {"features": [{"name": "b", "type": "float", "default": 1.0}, {"name": "c", "type": "string"}]}
    changes = {c.feature: (c.change, c.before, c.after) for c in schema_diff(before, after)}
    assert changes == {
        "c": ("added", "", "type=string"),
        "a": ("removed", "type=int", ""),
        "b": ("changed", "type=float, default=0.0", "type=float, default=1.0"),  # a zero default is a default
    }
