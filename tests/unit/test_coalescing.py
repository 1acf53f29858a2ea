"""Request coalescing: no wait (and no task) when a slot is free, shared calls under load, each request its own
rows' answers, a bad row failing only its request, whole-call errors given to all, and abandoned requests
dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ma_ray.serving.coalescing import GATHER_TURNS, RequestCoalescer, split_answer

pytestmark = pytest.mark.unit


class Pool:
    """A stand-in for the pool call: predictions are each row's ``x`` doubled; a row with ``bad`` fails its call."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, key: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append([row["x"] for row in rows])
        await self.gate.wait()
        if any(row.get("bad") for row in rows):
            raise ValueError(f"row {next(r['x'] for r in rows if r.get('bad'))} is bad")
        if any(row.get("unloadable") for row in rows):
            raise RuntimeError("model cannot load")
        return {"predictions": [2 * row["x"] for row in rows], "degraded": False, "key": key}


def test_split_answer_cuts_predictions_and_shares_the_rest() -> None:
    parts = split_answer({"predictions": [1, 2, 3], "degraded": True}, [2, 1])
    assert parts == [{"predictions": [1, 2], "degraded": True}, {"predictions": [3], "degraded": True}]


def test_a_request_that_finds_a_free_slot_goes_alone_at_once() -> None:
    async def scenario() -> None:
        pool = Pool()
        coalescer = RequestCoalescer(pool, max_in_flight=2)
        assert (await coalescer.submit("m:1", [{"x": 1}, {"x": 2}]))["predictions"] == [2, 4]
        assert pool.calls == [[1, 2]]

    asyncio.run(scenario())


def test_a_request_alone_is_called_in_its_own_task() -> None:
    """No future or task of its own: the call runs in the caller's task, so cancelling the request cancels its
    call, and the slot is free again for the next request."""

    async def scenario() -> None:
        pool, tasks_seen = Pool(), []
        pool.gate.clear()

        async def call(key: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
            tasks_seen.append(asyncio.current_task())
            return await pool(key, rows)

        coalescer = RequestCoalescer(call, max_in_flight=1)
        request = asyncio.create_task(coalescer.submit("m", [{"x": 1}]))
        await asyncio.sleep(0)
        assert tasks_seen == [request]
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)
        pool.gate.set()
        assert (await coalescer.submit("m", [{"x": 2}]))["predictions"] == [4]
        assert coalescer.calls == 2 and coalescer._keys == {}

    asyncio.run(scenario())


def test_requests_arriving_while_slots_are_busy_share_the_next_call() -> None:
    async def scenario() -> None:
        pool = Pool()
        pool.gate.clear()
        coalescer = RequestCoalescer(pool, max_in_flight=1, max_rows=4, gather_gap_s=0)
        tasks = [asyncio.create_task(coalescer.submit("m:1", [{"x": i}])) for i in range(6)]
        await asyncio.sleep(0)
        pool.gate.set()
        answers = await asyncio.gather(*tasks)
        assert [a["predictions"] for a in answers] == [[2 * i] for i in range(6)]
        assert pool.calls == [[0], [1, 2, 3, 4], [5]]  # the first alone, then up to max_rows rows per call
        assert coalescer.calls == 3

    asyncio.run(scenario())


def test_keys_are_coalesced_separately() -> None:
    async def scenario() -> None:
        pool = Pool()
        pool.gate.clear()
        coalescer = RequestCoalescer(pool, max_in_flight=1, gather_gap_s=0)
        tasks = [asyncio.create_task(coalescer.submit(f"m:{i % 2}", [{"x": i}])) for i in range(4)]
        await asyncio.sleep(0)
        pool.gate.set()
        answers = await asyncio.gather(*tasks)
        assert [a["key"] for a in answers] == ["m:0", "m:1", "m:0", "m:1"]
        assert sorted(pool.calls) == [[0], [1], [2], [3]]

    asyncio.run(scenario())


def test_a_bad_row_fails_only_its_own_request() -> None:
    async def scenario() -> None:
        pool = Pool()
        pool.gate.clear()
        coalescer = RequestCoalescer(pool, max_in_flight=1, gather_gap_s=0)
        first = asyncio.create_task(coalescer.submit("m", [{"x": 0}]))
        rest = [asyncio.create_task(coalescer.submit("m", [{"x": i, "bad": i == 2}])) for i in (1, 2, 3)]
        await asyncio.sleep(0)
        pool.gate.set()
        assert (await first)["predictions"] == [0]
        outcomes = await asyncio.gather(*rest, return_exceptions=True)
        assert outcomes[0]["predictions"] == [2] and outcomes[2]["predictions"] == [6]
        assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "row 2 is bad"
        assert pool.calls == [[0], [1, 2, 3], [1], [2], [3]]  # the shared call failed: each retried alone

    asyncio.run(scenario())


def test_a_whole_call_error_goes_to_every_request_without_retries() -> None:
    async def scenario() -> None:
        pool = Pool()
        pool.gate.clear()
        coalescer = RequestCoalescer(pool, max_in_flight=1, shared_errors=(RuntimeError,), gather_gap_s=0)
        first = asyncio.create_task(coalescer.submit("m", [{"x": 0}]))
        rest = [asyncio.create_task(coalescer.submit("m", [{"x": i, "unloadable": True}])) for i in (1, 2)]
        await asyncio.sleep(0)
        pool.gate.set()
        await first
        outcomes = await asyncio.gather(*rest, return_exceptions=True)
        assert all(isinstance(o, RuntimeError) for o in outcomes)
        assert pool.calls == [[0], [1, 2]]

    asyncio.run(scenario())


def test_a_cancelled_request_is_left_out_of_the_next_call() -> None:
    async def scenario() -> None:
        pool = Pool()
        pool.gate.clear()
        coalescer = RequestCoalescer(pool, max_in_flight=1, gather_gap_s=0)
        first = asyncio.create_task(coalescer.submit("m", [{"x": 0}]))
        gone = asyncio.create_task(coalescer.submit("m", [{"x": 1}]))
        kept = asyncio.create_task(coalescer.submit("m", [{"x": 2}]))
        await asyncio.sleep(0)
        gone.cancel()
        pool.gate.set()
        assert (await first)["predictions"] == [0] and (await kept)["predictions"] == [4]
        assert pool.calls == [[0], [2]]

    asyncio.run(scenario())


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_in_flight and max_rows must be >= 1"):
        RequestCoalescer(Pool(), max_in_flight=0)
    with pytest.raises(ValueError, match="gather_gap_s >= 0"):
        RequestCoalescer(Pool(), gather_gap_s=-1)


def _at(*moments: float) -> Any:
    """A clock giving ``moments`` in turn (seconds), one per submit."""
    ticks = iter(moments)
    return lambda: next(ticks)


async def _busy(coalescer: RequestCoalescer, pool: Pool) -> None:
    """A request just before: the next ones find the replica busy. Its call is left out of ``pool.calls``."""
    await coalescer.submit("warm-up", [{"x": -1}])
    pool.calls.clear()


def test_under_load_requests_already_received_share_a_call_that_never_waits() -> None:
    """The pool answers without waiting (a tier-1 model, cached features): without gathering, no queue forms."""

    async def scenario() -> None:
        pool = Pool()
        coalescer = RequestCoalescer(pool, max_in_flight=2, clock=_at(0.0, 0.0001, 0.0002, 0.0003, 0.0004))
        tasks = [asyncio.create_task(coalescer.submit("m", [{"x": i}])) for i in range(5)]
        answers = await asyncio.gather(*tasks)
        assert [a["predictions"] for a in answers] == [[2 * i] for i in range(5)]
        assert pool.calls == [[0], [1, 2, 3, 4]]  # the first found the replica quiet; the second gathered the rest
        assert coalescer.calls == 2 and coalescer._keys == {}

    asyncio.run(scenario())


def test_gathering_goes_on_while_each_turn_brings_a_request_and_no_longer_than_its_turns() -> None:
    async def scenario() -> None:
        pool = Pool()
        coalescer = RequestCoalescer(pool, max_in_flight=1, clock=lambda: 0.0)
        await _busy(coalescer, pool)
        first = asyncio.create_task(coalescer.submit("m", [{"x": 0}]))
        later = []
        for i in range(1, 2 * GATHER_TURNS):  # one more request every turn of the loop
            later.append(asyncio.create_task(coalescer.submit("m", [{"x": i}])))
            await asyncio.sleep(0)
        answers = await asyncio.gather(first, *later)
        assert [a["predictions"] for a in answers] == [[2 * i] for i in range(2 * GATHER_TURNS)]
        shared = pool.calls[0]
        assert shared[0] == 0 and 2 < len(shared) <= GATHER_TURNS + 1  # more than one turn's, no more than its own
        assert sorted(x for call in pool.calls for x in call) == list(range(2 * GATHER_TURNS))

    asyncio.run(scenario())


def test_a_quiet_replicas_requests_never_yield() -> None:
    async def scenario() -> None:
        pool, order = Pool(), []

        async def call(key: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
            order.append(rows[0]["x"])
            return await pool(key, rows)

        coalescer = RequestCoalescer(call, clock=_at(0.0, 0.1, 0.2))  # further apart than the 50 ms default
        tasks = [asyncio.create_task(coalescer.submit("m", [{"x": i}])) for i in range(3)]
        await asyncio.gather(*tasks)
        assert pool.calls == [[0], [1], [2]] and order == [0, 1, 2]  # each call made at once, in its own task

    asyncio.run(scenario())


def test_a_replica_paused_for_tens_of_milliseconds_still_gathers_its_backlog() -> None:
    """The replica's clock runs while the OS has it descheduled: a request 20 ms after the previous one, with
    others already received behind it, is under load (the default gap), not quiet."""

    async def scenario() -> None:
        pool = Pool()
        coalescer = RequestCoalescer(pool, clock=_at(0.0, 0.02, 0.02, 0.02))
        await coalescer.submit("m", [{"x": -1}])
        pool.calls.clear()
        tasks = [asyncio.create_task(coalescer.submit("m", [{"x": i}])) for i in range(3)]
        await asyncio.gather(*tasks)
        assert pool.calls == [[0, 1, 2]]

    asyncio.run(scenario())


def test_a_gathering_request_cancelled_spares_the_requests_that_joined_it() -> None:
    async def scenario() -> None:
        pool = Pool()
        coalescer = RequestCoalescer(pool, max_in_flight=1, clock=_at(0.0, 0.0, 0.0, 0.0))
        await _busy(coalescer, pool)
        pool.gate.clear()
        first, second, third = (asyncio.create_task(coalescer.submit("m", [{"x": i}])) for i in range(3))
        for _ in range(10):  # the first gathers the others, then their call waits on the pool
            await asyncio.sleep(0)
        assert pool.calls == [[0, 1, 2]]
        first.cancel()
        pool.gate.set()
        assert (await second)["predictions"] == [2] and (await third)["predictions"] == [4]
        assert pool.calls == [[0, 1, 2]] and coalescer._keys == {}

    asyncio.run(scenario())


def test_a_request_cancelled_while_gathering_frees_its_slot_for_the_queue() -> None:
    async def scenario() -> None:
        pool = Pool()
        coalescer = RequestCoalescer(pool, max_in_flight=1, clock=_at(0.0, 0.0, 0.0))
        await _busy(coalescer, pool)
        first = asyncio.create_task(coalescer.submit("m", [{"x": 0}]))
        await asyncio.sleep(0)  # ... is gathering: it yielded the loop once
        second = asyncio.create_task(coalescer.submit("m", [{"x": 1}]))
        first.cancel()
        assert (await second)["predictions"] == [2]
        assert pool.calls == [[1]] and coalescer._keys == {}
        assert (await asyncio.gather(first, return_exceptions=True))[0].__class__ is asyncio.CancelledError

    asyncio.run(scenario())


def test_a_gathered_call_keeps_to_max_rows() -> None:
    async def scenario() -> None:
        pool = Pool()
        coalescer = RequestCoalescer(pool, max_in_flight=1, max_rows=3, clock=_at(*[0.0] * 5))
        await _busy(coalescer, pool)
        rows = [[{"x": 0}, {"x": 1}], [{"x": 2}], [{"x": 3}], [{"x": 4}]]
        answers = await asyncio.gather(*(coalescer.submit("m", r) for r in rows))
        assert [a["predictions"] for a in answers] == [[0, 2], [4], [6], [8]]
        assert pool.calls == [[0, 1, 2], [3, 4]]

    asyncio.run(scenario())
