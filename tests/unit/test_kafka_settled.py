"""Kafka calls made while a broker settles (a leader being elected for a topic just created, a coordinator
loading) are asked again until a deadline; any other error is raised at once."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from ma_ray.connections import kafka_settled


def flaky(errors: list[int], answer: str = "marks") -> tuple[list[int], object]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise KafkaException(KafkaError(errors[len(calls) - 1]))
        return answer

    return calls, call


def test_a_partition_without_its_leader_yet_is_asked_again() -> None:
    calls, call = flaky([KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.COORDINATOR_LOAD_IN_PROGRESS])
    assert kafka_settled(call, timeout_s=5, pause_s=0) == "marks" and len(calls) == 3


def test_other_errors_and_errors_past_the_deadline_are_raised() -> None:
    calls, call = flaky([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    with pytest.raises(KafkaException):
        kafka_settled(call, timeout_s=5, pause_s=0)
    assert len(calls) == 1
    calls, call = flaky([KafkaError.NOT_LEADER_FOR_PARTITION] * 3)
    with pytest.raises(KafkaException):
        kafka_settled(call, timeout_s=0, pause_s=0)
    assert len(calls) == 1
