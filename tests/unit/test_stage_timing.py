"""Per-stage prediction latency: the X-MA-Timing header round-trips, lookups are classified hit/miss like the
seed's latency table, and every stage lands in one Prometheus histogram labelled by stage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from ma_ray.metrics import PrometheusMetrics
from ma_ray.serving.stage_timing import (
    FEATURE_LOOKUP_HIT,
    FEATURE_LOOKUP_MISS,
    REQUEST_SECONDS,
    STAGE_SECONDS,
    STAGES,
    StageMetrics,
    decode_timing,
    encode_timing,
    lookup_stage,
)


def test_header_is_server_timing_syntax_in_milliseconds() -> None:
    assert encode_timing({"parsing": 0.1234, "inference": 2.0}) == "parsing;dur=0.123, inference;dur=2.000"
    assert decode_timing("parsing;dur=0.123, inference;dur=2") == {"parsing": 0.123, "inference": 2.0}


@given(st.dictionaries(st.sampled_from(STAGES), st.floats(min_value=0, max_value=1e6)))
def test_header_round_trips_to_the_microsecond(stages: dict[str, float]) -> None:
    decoded = decode_timing(encode_timing(stages))
    assert decoded.keys() == stages.keys()
    assert all(decoded[k] == pytest.approx(v, abs=0.0005) for k, v in stages.items())


@pytest.mark.parametrize("header", ["parsing", "parsing;dur=", "parsing;dur=-1", "pars ing;dur=1", "a;b=1"])
def test_unreadable_header_entries_are_named(header: str) -> None:
    with pytest.raises(ValueError, match="X-MA-Timing entry"):
        decode_timing(header)


def test_stage_names_must_be_tokens() -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        encode_timing({"bad name": 1.0})


@pytest.mark.parametrize(
    ("tiers", "stage"),
    [
        (["l1", "redis", "request", "dsl"], FEATURE_LOOKUP_HIT),
        (["request"], FEATURE_LOOKUP_HIT),
        (["l1", "cassandra"], FEATURE_LOOKUP_MISS),
        (["sqlite"], FEATURE_LOOKUP_MISS),
        (["deadline"], FEATURE_LOOKUP_MISS),
    ],
)
def test_lookup_is_a_hit_only_when_every_stored_value_came_from_a_cache(tiers: list[str], stage: str) -> None:
    assert lookup_stage(tiers) == stage


def test_stages_and_requests_are_recorded_in_histograms() -> None:
    registry = CollectorRegistry()
    metrics = StageMetrics(PrometheusMetrics(registry))
    metrics.record({"parsing": 0.2, "feature_lookup_miss": 4.0}, pool="ModelPool")
    metrics.record_request({"parsing": 0.2, "feature_lookup_miss": 4.0, "inference": 1.8})
    count = registry.get_sample_value(f"{STAGE_SECONDS}_count", {"stage": "parsing", "pool": "ModelPool"})
    total = registry.get_sample_value(f"{STAGE_SECONDS}_sum", {"stage": "feature_lookup_miss", "pool": "ModelPool"})
    assert count == 1 and total == pytest.approx(0.004)
    assert registry.get_sample_value(f"{REQUEST_SECONDS}_sum", {"cache": "miss"}) == pytest.approx(0.006)


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown prediction stage"):
        StageMetrics(PrometheusMetrics(CollectorRegistry())).record({"warp": 1.0})


def test_metrics_are_recorded_once_the_answer_is_on_its_way() -> None:
    """`after_answer`: inside a request (a running loop) the record waits for the loop's next turn, so the
    request's answer is written first; outside a loop it is made at once."""
    import asyncio

    from ma_ray.metrics import after_answer

    recorded: list[str] = []
    after_answer(recorded.append, "no loop")
    assert recorded == ["no loop"]

    async def request() -> list[str]:
        after_answer(recorded.append, "deferred")
        seen_before_answer = list(recorded)
        await asyncio.sleep(0)  # the answer is written; the loop turns
        return seen_before_answer

    assert asyncio.run(request()) == ["no loop"]
    assert recorded == ["no loop", "deferred"]
