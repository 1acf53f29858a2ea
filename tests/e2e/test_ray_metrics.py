"""Feature-serving actors' metrics reach Ray's Prometheus endpoint (what the Ray dashboard reads), while one
streaming group lags past its SLA and is served from batch values."""

from __future__ import annotations

import contextlib
from pathlib import Path

import ray
import requests

from actors.feature_server import FeatureServerPool
from ma_ray.config import load_settings
from ma_ray.palette.online import now_us
from ma_ray.palette.streaming.health import StreamHealth, open_health_board
from ma_ray.serving.feature_metrics import METRIC_NAMES
from tests.polling import wait_for
from tests.rideshare_data import load_sample


def test_platform_metrics_on_the_ray_endpoint(ray_metrics_url: str, tmp_path: Path, raw_uri: str) -> None:
    settings = load_settings(state_dir=tmp_path)
    expected = load_sample(settings, raw_uri)
    # driver_realtime's aggregation actor says it is far behind: readers fall back to batch values
    lagging = StreamHealth("a0", lag_messages=10_000, freshness_s=600.0, updated_us=now_us())
    open_health_board(settings).publish("rideshare", "driver_realtime", lagging)
    pool = FeatureServerPool(2, "rideshare", settings.model_dump())
    drivers = [{"driver_id": d} for d in [*expected.index[:10], "nobody"]]
    trips = "@palette:rideshare:driver_stats:trip_count_7d:driver_id"
    recent = "@palette:rideshare:driver_realtime:trip_count_1h:driver_id"
    answers = ray.get([pool.get_features(drivers, [trips, recent]) for _ in range(50)])
    assert all(answer["stream_fallback"] == ["driver_realtime"] for answer in answers)
    found: set[str] = set()
    labels = False

    def exported() -> bool:
        nonlocal found, labels
        text = requests.get(ray_metrics_url, timeout=5).text
        found = {name for name in METRIC_NAMES if f"ray_{name}" in text}
        labels = 'tier="l1"' in text and 'reason="missing"' in text
        return found == set(METRIC_NAMES) and labels

    with contextlib.suppress(TimeoutError):  # the assertions below say what is missing
        wait_for(exported, 60, interval_s=1)
    assert found == set(METRIC_NAMES)
    assert labels, "values served from L1 and defaults for a missing driver were not exported"
