"""Admission control (conversations/admission.py): a bound on turns opening at once, a short FIFO
queue with a deadline, and server_busy with retry_after past it. Real asyncio, no server needed."""

from __future__ import annotations

import asyncio

import pytest

from conversations import metrics
from conversations.admission import AdmissionGate, ServerBusy


def _gate(**overrides) -> AdmissionGate:
    options = {"limit": 2, "queue_max": 2, "wait_seconds": 0.2, "retry_after": 3}
    return AdmissionGate(**{**options, **overrides})


def test_turns_within_the_bound_open_at_once_and_release_their_slot():
    async def scenario() -> tuple[int, int]:
        gate = _gate()
        first, second = await gate.admit(), await gate.admit()
        opening = gate.opening
        first()
        first()  # a second release of the same slot frees nothing more
        second()
        return opening, gate.opening

    assert asyncio.run(scenario()) == (2, 0)


def test_waiting_turns_get_slots_in_the_order_they_came():
    async def scenario() -> list[str]:
        gate = _gate(queue_max=5, wait_seconds=5)
        releases = [await gate.admit(), await gate.admit()]
        order: list[str] = []

        async def turn(name: str) -> None:
            release = await gate.admit()
            order.append(name)
            release()

        waiting = [asyncio.create_task(turn(name)) for name in ("a", "b", "c")]
        await asyncio.sleep(0.05)
        for release in releases:
            release()
        await asyncio.gather(*waiting)
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_a_turn_still_waiting_at_the_deadline_is_told_busy_with_retry_after():
    async def scenario() -> tuple[ServerBusy, int]:
        gate = _gate(wait_seconds=0.05)
        await gate.admit()
        await gate.admit()
        refusals = metrics.TURN_REFUSALS._value.get()
        with pytest.raises(ServerBusy) as refused:
            await gate.admit()
        assert metrics.TURN_REFUSALS._value.get() == refusals + 1
        return refused.value, len(gate.waiters)

    busy, still_waiting = asyncio.run(scenario())
    assert busy.code == "server_busy" and busy.retry_after == 3 and busy.status == 503
    assert "busy" in busy.message and "3 seconds" in busy.message
    assert still_waiting == 0


def test_a_full_queue_refuses_at_once():
    async def scenario() -> float:
        gate = _gate(limit=1, queue_max=1, wait_seconds=5)
        await gate.admit()
        queued = asyncio.create_task(gate.admit())
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ServerBusy):
            await gate.admit()
        waited = loop.time() - started
        queued.cancel()
        return waited

    assert asyncio.run(scenario()) < 1  # not the queue's 5 s deadline


def test_a_waiter_that_goes_away_passes_its_slot_on():
    async def scenario() -> int:
        gate = _gate(limit=1, queue_max=5, wait_seconds=5)
        release = await gate.admit()
        leaving = asyncio.create_task(gate.admit())
        staying = asyncio.create_task(gate.admit())
        await asyncio.sleep(0.01)
        leaving.cancel()
        release()
        (await staying)()
        return gate.opening

    assert asyncio.run(scenario()) == 0
