"""The streaming command line and metrics, without Kafka: partitioning, event encoding, refusals."""

from __future__ import annotations

import json
from importlib import resources

from prometheus_client import CollectorRegistry

from apps.stream_pipeline import encode_events, generated_events, main, partition_groups
from ma_ray.datagen.rideshare import RideshareConfig
from ma_ray.metrics import PrometheusMetrics
from ma_ray.palette.streaming.metrics import StreamMetrics

SAMPLE = resources.files("ma_ray.palette") / "samples" / "rideshare"


def test_partitions_are_dealt_over_actors() -> None:
    assert partition_groups(4, 2) == [(0, 2), (1, 3)]
    assert partition_groups(3, 5) == [(0,), (1,), (2,)]
    assert partition_groups(2, 1) == [(0, 1)]


def test_events_encode_as_json_keyed_by_driver_with_micros() -> None:
    events = next(generated_events(RideshareConfig(trips=10_000, chunk_trips=1_000, days=1)))
    records = encode_events(events.slice(0, 5))
    first = json.loads(records[0][1])
    assert records[0][0] == first["driver_id"].encode()
    assert isinstance(first["event_ts"], int) and first["event_type"] in ("requested", "cancelled", "accepted")
    assert first["event_ts"] == events["event_ts"][0].value


def test_run_refuses_a_batch_group(capsys) -> None:
    with resources.as_file(SAMPLE) as path:
        code = main(["run", "--repository", str(path), "--group", "driver_stats", "--topic", "t"])
    assert code == 2
    assert "streaming path runs streaming groups" in capsys.readouterr().err


def test_metrics_record_lag_freshness_and_dead_letters() -> None:
    registry = CollectorRegistry()
    metrics = StreamMetrics(PrometheusMetrics(registry))
    tags = {"catalog": "c", "group": "g", "actor": "a0"}
    metrics.record_batch(tags, events=10, late=1, freshness_s=0.3)
    metrics.record_dead_letter(tags, "bad_json")
    metrics.record_lag(tags, 42)
    assert registry.get_sample_value("ma_ray_stream_events_total", tags) == 10
    assert registry.get_sample_value("ma_ray_stream_late_events_total", tags) == 1
    assert registry.get_sample_value("ma_ray_stream_dead_letters_total", {**tags, "reason": "bad_json"}) == 1
    assert registry.get_sample_value("ma_ray_stream_consumer_lag", tags) == 42
    assert registry.get_sample_value("ma_ray_stream_freshness_seconds_count", tags) == 1


def test_health_says_when_a_group_is_outside_its_sla(tmp_path) -> None:
    from ma_ray.palette.streaming.health import FileHealthBoard, StreamHealth, group_lagging

    board = FileHealthBoard(tmp_path)
    now = 1_000_000_000_000
    assert group_lagging(board.read("c", "g"), sla_s=60, now_us=now)  # nobody reported
    board.publish("c", "g", StreamHealth("a0", lag_messages=0, freshness_s=0.4, updated_us=now))
    board.publish("c", "g", StreamHealth("a1", lag_messages=10, freshness_s=1.0, updated_us=now))
    assert (tmp_path / "c" / "g" / "a1.health.json").exists()  # beside the actors' checkpoints
    health = board.read("c", "g")
    assert [h.actor for h in health] == ["a0", "a1"]
    assert not group_lagging(health, sla_s=60, now_us=now + 1_000_000)
    assert group_lagging(health, sla_s=0.5, now_us=now)  # a1 has unread events and older values
    assert group_lagging(health, sla_s=60, now_us=now + 120 * 1_000_000)  # silent actors count as lagging
