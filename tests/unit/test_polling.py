import pytest

from tests.polling import wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.unit
def test_returns_the_first_truthy_answer_without_waiting_longer() -> None:
    clock, answers = FakeClock(), iter([None, 0, [], "ready", "later"])
    assert wait_for(lambda: next(answers), 5, clock=clock, sleep=clock.sleep, interval_s=1) == "ready"
    assert clock.now == 3


@pytest.mark.unit
def test_names_what_never_happened_at_the_deadline() -> None:
    clock, seen = FakeClock(), []
    with pytest.raises(TimeoutError, match=r"replica 2 still loading: not within 2 s"):
        wait_for(lambda: seen.append(clock.now), 2, lambda: f"replica {len(seen) - 1} still loading",
                 interval_s=1, clock=clock, sleep=clock.sleep)  # fmt: skip
    assert seen == [0, 1, 2]  # asked once more at the deadline, then given up
