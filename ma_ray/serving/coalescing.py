"""Request coalescing between the prediction ingress and a model pool: requests for the same model version that
arrive while its calls are busy share the next call.

Per key (pool, model id) at most ``max_in_flight`` calls run at once. A request that finds a free slot goes at
once, so a lightly loaded service adds no wait; requests that arrive while every slot is busy queue, and when a
call returns, the queue (up to ``max_rows`` rows) goes as one call. Under load each pool hop then carries many
requests' rows, which is where a two-hop service spends its CPU.

A call that never waits (a tier-1 model answered in the replica from cached features) is over before the next
request reaches the coalescer, so no queue would ever form. Under load (a request within ``gather_gap_s`` of the
previous one) a request with a free slot therefore yields the event loop before its call, once and again while
each turn brings another request (``GATHER_TURNS`` at most): the requests the replica has already received reach
the coalescer meanwhile and share the call. No timer is involved, and a quiet replica's requests never yield.
The gap is long (50 ms by default): between two arrivals on a replica with a backlog lies one request's own
handling, close to a millisecond, longer when the OS deschedules the replica on a shared box, and a 1 ms gap
judged most requests under 16 clients quiet (0.81-0.85x bare's throughput against 0.90-0.99x with 50 ms,
`bench/coalescing_gap.py`). A yield nobody joins costs a few microseconds.

A coalesced call that fails is retried one request at a time, so a bad row fails only its own request; errors
that concern the call as a whole (a model that cannot load, say: ``shared_errors``) go to every request without
a retry.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, cast

# Turns of the event loop a gathering request gives others to join it, while each turn brings one more.
GATHER_TURNS = 8
# A request this close after the previous one finds the replica busy and gathers (see the module's text).
GATHER_GAP_S = 0.05

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
    gathering: bool = False  # a request holds a slot while the loop turns: arrivals queue behind it


class RequestCoalescer:
    """``await coalescer.submit(key, rows)`` answers like ``await call(key, rows)``, sharing calls under load."""

    def __init__(
        self,
        call: Call,
        max_in_flight: int = 2,
        max_rows: int = 256,
        shared_errors: tuple[type[BaseException], ...] = (),
        gather_gap_s: float = GATHER_GAP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_in_flight < 1 or max_rows < 1 or gather_gap_s < 0:
            raise ValueError(
                f"max_in_flight and max_rows must be >= 1 and gather_gap_s >= 0, got {max_in_flight}, {max_rows} "
                f"and {gather_gap_s}"
            )
        self._call, self.max_in_flight, self.max_rows = call, max_in_flight, max_rows
        self.shared_errors = shared_errors
        self.gather_gap_s, self._clock = gather_gap_s, clock
        self._last_submit = -math.inf
        self._keys: dict[Hashable, _Key] = {}
        self.calls = 0  # calls made, for tests and metrics: fewer than requests under load

    async def submit(self, key: Hashable, rows: Rows) -> Answer:
        now = self._clock()
        busy, self._last_submit = now - self._last_submit < self.gather_gap_s, now
        state = self._keys.setdefault(key, _Key())
        if state.in_flight < self.max_in_flight and not state.queue and not state.gathering:
            if busy:
                return await self._gathering(key, state, rows)
            return await self._alone_at_once(key, state, rows)
        waiting = _Waiting(rows, asyncio.get_running_loop().create_future())
        state.queue.append(waiting)
        if state.in_flight < self.max_in_flight and not state.gathering:
            self._dispatch(key, state)
        return await waiting.future

    async def _gathering(self, key: Hashable, state: _Key, rows: Rows) -> Answer:
        """Under load: the loop turns before the call (again while each turn brings a request), and the requests for
        this key that reached the coalescer meanwhile share it (in a task of its own, so this request's
        cancellation spares theirs)."""
        state.in_flight += 1
        state.gathering = True
        try:
            for _ in range(GATHER_TURNS):
                queued = len(state.queue)
                await asyncio.sleep(0)
                if len(state.queue) == queued:  # nobody joined this turn: the rest are further behind
                    break
        except BaseException:
            state.gathering = False
            self._release(key, state)
            raise
        state.gathering = False
        company = self._take(state, len(rows))
        if not company:
            return await self._call_holding(key, state, rows)
        own = _Waiting(rows, asyncio.get_running_loop().create_future())
        asyncio.get_running_loop().create_task(self._run(key, state, [own, *company]))  # it holds the slot now
        return await own.future

    async def _alone_at_once(self, key: Hashable, state: _Key, rows: Rows) -> Answer:
        """A free slot and no queue: the call is made in the request's own task (no future, no task to schedule:
        the path of every request on a lightly loaded replica); requests arriving meanwhile queue as usual."""
        state.in_flight += 1
        return await self._call_holding(key, state, rows)

    async def _call_holding(self, key: Hashable, state: _Key, rows: Rows) -> Answer:
        """The call, in the caller's task, on a slot the caller took; the slot is freed however it ends."""
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

    def _take(self, state: _Key, rows: int = 0) -> list[_Waiting]:
        """Queued requests, first come first, while their rows fit ``max_rows`` with ``rows`` already taken (the
        first always goes); requests whose clients went away are dropped."""
        batch: list[_Waiting] = []
        total = rows
        while state.queue and (not (batch or rows) or total + len(state.queue[0].rows) <= self.max_rows):
            waiting = state.queue.popleft()
            if waiting.future.cancelled():  # its client went away
                continue
            batch.append(waiting)
            total += len(waiting.rows)
        return batch

    def _dispatch(self, key: Hashable, state: _Key) -> None:
        batch = self._take(state)
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
