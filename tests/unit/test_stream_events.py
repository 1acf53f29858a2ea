"""Event validation: every malformed payload becomes a dead-letter reason, nothing raises."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from ma_ray.datagen.rideshare import TRIP_EVENT_SCHEMA
from ma_ray.palette.pipelines import generate_pipelines
from ma_ray.palette.repository import load_repository
from ma_ray.palette.streaming import REASONS, EventParser, Rejected

NOW = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def parser() -> EventParser:
    with resources.as_file(resources.files("ma_ray.palette") / "samples" / "rideshare") as path:
        repo = load_repository(path)
    return EventParser(generate_pipelines(repo).plan("driver_realtime").bind(TRIP_EVENT_SCHEMA), max_future_s=60)


GOOD = {"event_id": 1, "driver_id": "drv_1", "event_type": "requested", "event_ts": NOW - 5}


def test_a_good_event_parses_with_its_time_in_micros(parser: EventParser) -> None:
    assert parser.parse(json.dumps(GOOD), NOW) == GOOD
    iso = parser.parse(json.dumps({**GOOD, "event_ts": "2026-01-01T00:00:00+00:00"}), NOW)
    assert iso["event_ts"] == NOW


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (None, "not_object"),
        (json.dumps([1, 2]), "not_object"),
        (json.dumps({**GOOD, "driver_id": None}), "missing_key"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "event_ts"}), "missing_event_time"),
        (json.dumps({**GOOD, "driver_id": 7}), "wrong_type"),
        (json.dumps({**GOOD, "event_ts": "yesterday"}), "wrong_type"),
        (json.dumps({**GOOD, "event_ts": 1.5}), "wrong_type"),
        (json.dumps({**GOOD, "event_type": 3}), "wrong_type"),
        (json.dumps({**GOOD, "event_ts": NOW + 3600 * 1_000_000}), "future_event_time"),
    ],
)
def test_bad_events_are_rejected_with_a_reason(parser: EventParser, payload, reason: str) -> None:
    rejected = parser.parse(payload, NOW)
    assert isinstance(rejected, Rejected) and rejected.reason == reason and rejected.detail
    assert reason in REASONS
