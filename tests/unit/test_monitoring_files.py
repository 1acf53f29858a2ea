"""The Grafana dashboard and alert rules use only metric names the code emits."""

import json
import re
from pathlib import Path

import yaml

from ma_ray.jobs.workflow import METRIC_NAMES as TRAINING_METRICS
from ma_ray.palette.streaming.metrics import METRIC_NAMES as STREAM_METRICS
from ma_ray.serving.feature_metrics import METRIC_NAMES
from ma_ray.serving.rollout import METRIC_NAMES as ROLLOUT_METRICS
from ma_ray.serving.stage_timing import METRIC_NAMES as PREDICTION_METRICS

MONITORING = Path(__file__).resolve().parents[2] / "clusters" / "monitoring"
EMITTED = (
    set(METRIC_NAMES) | set(STREAM_METRICS) | set(PREDICTION_METRICS) | set(ROLLOUT_METRICS) | set(TRAINING_METRICS)
)
# Ray exports application metrics with a "ray_" prefix; histograms add these suffixes.
REFERENCE = re.compile(r"ray_(ma_ray_[a-z0-9_]+?)(?:_bucket|_count|_sum)?\b")


def referenced(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in REFERENCE.findall(expr)}


def test_dashboard_references_emitted_metrics_only() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    names = referenced([t["expr"] for panel in dashboard["panels"] for t in panel["targets"]])
    assert names and names <= EMITTED, names - EMITTED
    assert names >= EMITTED, f"metrics without a panel: {EMITTED - names}"


def test_alert_rules_reference_emitted_metrics_only() -> None:
    rules = yaml.safe_load((MONITORING / "alert-rules.yaml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    names = referenced(expressions)
    assert names and names <= EMITTED, names - EMITTED
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"FeatureCacheHitRatioLow", "FeatureLookupP99High", "FeatureStoreBreakerOpen"} <= alerts
