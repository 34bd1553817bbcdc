"""Admission control: how many turns may be opening at once in this web process.

A turn is "opening" from the visitor's message to its first text (or its end, if it never gets
any): the part that costs the process CPU and database work before the visitor sees anything.
At most TURN_OPEN_LIMIT turns open at once; the next ones wait in a first-in, first-out queue of
at most TURN_QUEUE_MAX, each for at most TURN_QUEUE_WAIT_MS. A turn that cannot get a slot in
time is refused with `server_busy` and a `retry_after` (TURN_BUSY_RETRY_SECONDS): told within the
queue's deadline instead of waiting seconds for a first token behind a burst. Nothing was stored
for a refused turn, so its retry (with the same idempotency key) is a new attempt, not a duplicate.

One gate per event loop (one per daphne process); the queue's length, the time turns waited and
the refusals are Prometheus metrics (metrics.py).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable

from django.conf import settings

from chatbot_saas.errors import AppError

from . import metrics


class ServerBusy(AppError):
    code = "server_busy"
    status = 503

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, round(retry_after))
        super().__init__(
            f"The assistant is busy right now. Please try again in {seconds} seconds.", retry_after=seconds
        )
        self.retry_after = seconds


class AdmissionGate:
    def __init__(self, *, limit: int, queue_max: int, wait_seconds: float, retry_after: float) -> None:
        self.limit = limit
        self.queue_max = queue_max
        self.wait_seconds = wait_seconds
        self.retry_after = retry_after
        self.opening = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def admit(self) -> Callable[[], None]:
        """Wait for a slot (FIFO, up to the deadline) and return its release, to call exactly once
        when the turn's first text is out or the turn ended. Raises ServerBusy when refused."""
        loop = asyncio.get_running_loop()
        if self.opening < self.limit and not self.waiters:
            self.opening += 1
            metrics.TURN_QUEUE_WAIT.observe(0)
            return self._release_once()
        if len(self.waiters) >= self.queue_max:
            self._refuse()
        slot: asyncio.Future[None] = loop.create_future()
        self.waiters.append(slot)
        metrics.TURN_QUEUE_LENGTH.set(len(self.waiters))
        started = loop.time()
        try:
            await asyncio.wait([slot], timeout=self.wait_seconds)
        except asyncio.CancelledError:
            self._leave(slot)
            raise
        metrics.TURN_QUEUE_WAIT.observe(loop.time() - started)
        if not slot.done():
            self._leave(slot)
            self._refuse()
        return self._release_once()

    def _leave(self, slot: asyncio.Future[None]) -> None:
        """A waiter gives up: out of the queue, or, if a slot was handed to it meanwhile, pass it on."""
        if slot.done():
            self._release()
        else:
            slot.cancel()
            self.waiters.remove(slot)
        metrics.TURN_QUEUE_LENGTH.set(len(self.waiters))

    def _refuse(self) -> None:
        metrics.TURN_REFUSALS.inc()
        raise ServerBusy(self.retry_after)

    def _release_once(self) -> Callable[[], None]:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release()

        return release

    def _release(self) -> None:
        # Hand the slot to the longest waiter (the count stays), or free it.
        while self.waiters:
            slot = self.waiters.popleft()
            metrics.TURN_QUEUE_LENGTH.set(len(self.waiters))
            if not slot.done():
                slot.set_result(None)
                return
        self.opening -= 1


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AdmissionGate] = weakref.WeakKeyDictionary()


def admission_gate() -> AdmissionGate:
    """This event loop's gate, built from the settings the first time it is asked for."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = AdmissionGate(
            limit=settings.TURN_OPEN_LIMIT,
            queue_max=settings.TURN_QUEUE_MAX,
            wait_seconds=settings.TURN_QUEUE_WAIT_MS / 1000,
            retry_after=settings.TURN_BUSY_RETRY_SECONDS,
        )
    return gate


def reset() -> None:
    """Forget every gate (tests that change the settings call this)."""
    _gates.clear()
