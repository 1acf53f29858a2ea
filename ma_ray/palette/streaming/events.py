"""Parsing and validating raw stream events: a good event becomes a dict, a bad one a dead-letter reason.

Events are JSON objects carrying the raw columns of the group's source (``trip_events``). The columns a plan
reads are checked: the entity key and the event time must be present; every column read must have its raw
type when present (timestamps are epoch microseconds, or ISO-8601 strings); an event time further in the
future than ``max_future_s`` (against the processing clock) is refused. Nothing here raises on bad input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ma_ray.palette.pipelines import MICROS_PER_SECOND, BoundPlan, epoch_us
from ma_ray.palette.types import FeatureType

BAD_JSON = "bad_json"
NOT_OBJECT = "not_object"
MISSING_KEY = "missing_key"
MISSING_EVENT_TIME = "missing_event_time"
WRONG_TYPE = "wrong_type"
FUTURE_EVENT_TIME = "future_event_time"
REASONS = (BAD_JSON, NOT_OBJECT, MISSING_KEY, MISSING_EVENT_TIME, WRONG_TYPE, FUTURE_EVENT_TIME)


@dataclass(frozen=True)
class Rejected:
    """Why an event was refused: a stable ``reason`` code (for metrics) and a readable ``detail``."""

    reason: str
    detail: str


def _is_type(kind: FeatureType, value: Any) -> bool:
    if kind is FeatureType.STRING:
        return isinstance(value, str)
    if kind is FeatureType.BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is FeatureType.INT:
        return isinstance(value, int)
    if kind is FeatureType.FLOAT:
        return isinstance(value, (int, float))
    return isinstance(value, (int, str))  # timestamp: epoch micros or ISO-8601


def _micros(value: int | str) -> int:
    if isinstance(value, int):
        return value
    parsed = datetime.fromisoformat(value)
    return epoch_us(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


class EventParser:
    """Turns raw payloads into validated events (dicts, timestamps as epoch micros) for one bound plan."""

    def __init__(self, bound: BoundPlan, max_future_s: float = 300.0) -> None:
        plan = bound.plan
        self.key = plan.join_key
        self.time = plan.time_column
        self.key_type = bound.raw_types[plan.join_key]
        self.checked = [(c, bound.raw_types[c]) for c in bound.columns if c not in (self.key, self.time)]
        self.max_future_us = int(max_future_s * MICROS_PER_SECOND)

    def parse(self, payload: bytes | str | None, now_us: int) -> dict[str, Any] | Rejected:
        try:
            event = json.loads(payload) if payload is not None else None
        except (ValueError, UnicodeDecodeError) as error:
            return Rejected(BAD_JSON, f"not JSON: {error}")
        if not isinstance(event, dict):
            return Rejected(NOT_OBJECT, f"expected a JSON object, got {type(event).__name__}")
        return self.validate(event, now_us)

    def validate(self, event: dict[str, Any], now_us: int) -> dict[str, Any] | Rejected:
        key = event.get(self.key)
        if key is None:
            return Rejected(MISSING_KEY, f"entity key '{self.key}' is missing")
        if not _is_type(self.key_type, key):
            return Rejected(WRONG_TYPE, f"'{self.key}' is {type(key).__name__}, expected {self.key_type}")
        ts = event.get(self.time)
        if ts is None:
            return Rejected(MISSING_EVENT_TIME, f"event time '{self.time}' is missing")
        try:
            micros = _micros(ts) if _is_type(FeatureType.TIMESTAMP, ts) else None
        except ValueError:
            micros = None
        if micros is None:
            return Rejected(WRONG_TYPE, f"'{self.time}' is {ts!r}, expected epoch microseconds or ISO-8601")
        if micros > now_us + self.max_future_us:
            ahead = (micros - now_us) / MICROS_PER_SECOND
            return Rejected(FUTURE_EVENT_TIME, f"'{self.time}' is {ahead:.0f}s in the future")
        event[self.time] = micros
        return self._check_columns(event)

    def _check_columns(self, event: dict[str, Any]) -> dict[str, Any] | Rejected:
        for column, kind in self.checked:
            value = event.get(column)
            if value is not None and not _is_type(kind, value):
                return Rejected(WRONG_TYPE, f"'{column}' is {type(value).__name__}, expected {kind}")
            if kind is FeatureType.TIMESTAMP and value is not None:
                try:
                    event[column] = _micros(value)
                except ValueError:
                    return Rejected(WRONG_TYPE, f"'{column}' is {value!r}, not a timestamp")
        return event
