import pytest

from ma_ray.circuit_breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_and_recovers_through_half_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("cassandra", failure_threshold=3, reset_timeout_s=5, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now = 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_a_failed_trial_opens_again() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("redis", failure_threshold=1, reset_timeout_s=1, clock=clock)
    breaker.record_failure()
    clock.now = 1.5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now = 2.0
    assert not breaker.allow()
    clock.now = 2.6
    assert breaker.allow()


def test_success_resets_the_count() -> None:
    breaker = CircuitBreaker("x", failure_threshold=2)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="failure_threshold >= 1"):
        CircuitBreaker("x", failure_threshold=0)
