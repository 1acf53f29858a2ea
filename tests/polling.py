"""One way for a test to wait: poll a condition until it holds, with a deadline that names what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    timeout_s: float,
    what: str | Callable[[], str] = "the condition",
    interval_s: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``condition`` every ``interval_s`` until it returns something truthy, and return that. After ``timeout_s``
    raise ``TimeoutError`` naming ``what`` (a callable is asked then, so the message can show the last state)."""
    deadline = clock() + timeout_s
    while not (result := condition()):
        if clock() >= deadline:
            raise TimeoutError(f"{what() if callable(what) else what}: not within {timeout_s:g} s")
        sleep(interval_s)
    return result
