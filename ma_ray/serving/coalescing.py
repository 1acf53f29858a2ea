"""Request coalescing between the prediction ingress and a model pool: requests for the same model version that
arrive while its calls are busy share the next call.

Per key (pool, model id) at most ``max_in_flight`` calls run at once. A request that finds a free slot goes at
once, so a lightly loaded service adds no wait; requests that arrive while every slot is busy queue, and when a
call returns, the queue (up to ``max_rows`` rows) goes as one call. Under load each pool hop then carries many
requests' rows, which is where a two-hop service spends its CPU. A coalesced call that fails is retried one
request at a time, so a bad row fails only its own request; errors that concern the call as a whole (a model
that cannot load, say: ``shared_errors``) go to every request without a retry.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, cast

Rows = list[dict[str, Any]]
Answer = dict[str, Any]
Call = Callable[[Hashable, Rows], Awaitable[Answer]]


def split_answer(answer: Answer, counts: list[int]) -> list[Answer]:
    """One coalesced answer cut into each request's: its slice of ``predictions``, the rest shared."""
    parts, start = [], 0
    for count in counts:
        parts.append({**answer, "predictions": answer["predictions"][start : start + count]})
        start += count
    return parts


@dataclass
class _Waiting:
    rows: Rows
    future: asyncio.Future[Answer]


@dataclass
class _Key:
    in_flight: int = 0
    queue: deque[_Waiting] = field(default_factory=deque)


class RequestCoalescer:
    """``await coalescer.submit(key, rows)`` answers like ``await call(key, rows)``, sharing calls under load."""

    def __init__(
        self,
        call: Call,
        max_in_flight: int = 2,
        max_rows: int = 256,
        shared_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        if max_in_flight < 1 or max_rows < 1:
            raise ValueError(f"max_in_flight and max_rows must be >= 1, got {max_in_flight} and {max_rows}")
        self._call, self.max_in_flight, self.max_rows = call, max_in_flight, max_rows
        self.shared_errors = shared_errors
        self._keys: dict[Hashable, _Key] = {}
        self.calls = 0  # calls made, for tests and metrics: fewer than requests under load

    async def submit(self, key: Hashable, rows: Rows) -> Answer:
        state = self._keys.setdefault(key, _Key())
        if state.in_flight < self.max_in_flight and not state.queue:
            return await self._alone_at_once(key, state, rows)
        waiting = _Waiting(rows, asyncio.get_running_loop().create_future())
        state.queue.append(waiting)
        if state.in_flight < self.max_in_flight:
            self._dispatch(key, state)
        return await waiting.future

    async def _alone_at_once(self, key: Hashable, state: _Key, rows: Rows) -> Answer:
        """A free slot and no queue: the call is made in the request's own task (no future, no task to schedule:
        the path of every request on a lightly loaded replica); requests arriving meanwhile queue as usual."""
        state.in_flight += 1
        self.calls += 1
        try:
            return await self._call(key, rows)
        finally:
            self._release(key, state)

    def _release(self, key: Hashable, state: _Key) -> None:
        state.in_flight -= 1
        if state.queue:
            self._dispatch(key, state)
        elif state.in_flight == 0:
            self._keys.pop(key, None)

    def _dispatch(self, key: Hashable, state: _Key) -> None:
        batch: list[_Waiting] = []
        total = 0
        while state.queue and (not batch or total + len(state.queue[0].rows) <= self.max_rows):
            waiting = state.queue.popleft()
            if waiting.future.cancelled():  # its client went away
                continue
            batch.append(waiting)
            total += len(waiting.rows)
        if not batch:
            return
        state.in_flight += 1
        asyncio.get_running_loop().create_task(self._run(key, state, batch))

    async def _run(self, key: Hashable, state: _Key, batch: list[_Waiting]) -> None:
        try:
            await self._answer(key, batch)
        finally:
            self._release(key, state)

    async def _answer(self, key: Hashable, batch: list[_Waiting]) -> None:
        self.calls += 1
        try:
            answer = await self._call(key, [row for waiting in batch for row in waiting.rows])
        except Exception as error:
            if len(batch) == 1 or isinstance(error, self.shared_errors):
                for waiting in batch:
                    _settle(waiting.future, error=error)
                return
            await asyncio.gather(*(self._alone(key, waiting) for waiting in batch))
            return
        for waiting, part in zip(batch, split_answer(answer, [len(w.rows) for w in batch]), strict=True):
            _settle(waiting.future, part)

    async def _alone(self, key: Hashable, waiting: _Waiting) -> None:
        self.calls += 1
        try:
            _settle(waiting.future, await self._call(key, waiting.rows))
        except Exception as error:
            _settle(waiting.future, error=error)


def _settle(future: asyncio.Future[Answer], answer: Answer | None = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(cast(Answer, answer))  # error is None: the caller passed an answer
