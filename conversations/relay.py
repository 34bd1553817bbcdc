"""Runs one answer turn and relays it as numbered frames: to a live client, and to the resume buffer.

`AnswerRelay.run()` drives `answer_stream`, coalesces deltas into one frame every
STREAM_COALESCE_MS (the first text goes out at once, for time to first token), numbers the frames
of the answer (`seq` 1, 2, 3…), sends them to whoever is attached, and appends them to the answer's
Redis stream so a reconnecting client can resume. The WebSocket consumer, the SSE API and the
OpenAI-compatible endpoint all use it.

It runs in a task of its own: a client that goes away only detaches (`detach()`), and the answer
still finishes and is stored `complete`. `stop()` closes the pipeline's generator, which settles
the message `partial`. Every turn ends with one structured log line and its metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

# The provider SDKs take seconds of CPU to import: pay that when the server starts, never inside
# the event loop on a visitor's first turn.
import anthropic  # noqa: F401
import openai  # noqa: F401
from asgiref.sync import sync_to_async
from django.conf import settings

from bots.models import Bot
from chatbot_saas.errors import AppError
from chatbot_saas.tracing import span
from tenants.context import tenant_context
from tenants.models import Tenant

from . import metrics
from .models import Conversation, Message, Trace
from .pipeline import events as ev
from .pipeline.candidate import Candidate, evaluating
from .pipeline.service import answer_stream
from .selectors import citation_public
from .streams import stream_batcher, stream_clear_stop

logger = logging.getLogger("conversations.turns")

Send = Callable[[dict[str, Any]], Awaitable[None]]

# Answers streaming in this process, by assistant message id (for a local `stop`).
RUNNING: dict[int, AnswerRelay] = {}
# Strong references to background turn tasks, so the event loop does not drop them.
_BACKGROUND: set[asyncio.Task] = set()


class AnswerRelay:
    def __init__(
        self,
        *,
        bot: Bot,
        tenant: Tenant,
        conversation: Conversation,
        user_message: str,
        channel: str,
        send: Send | None,
        client_id: Any = None,
        candidate: Candidate | None = None,
        idempotency_key: str | None = None,
        on_opened: Callable[[], None] | None = None,
    ) -> None:
        self.bot = bot
        # The playground's chosen prompt version, used in place of the published one (candidate.py).
        self.candidate = candidate
        self.tenant = tenant
        self.conversation = conversation
        self.user_message = user_message
        self.channel = channel
        self.send = send
        self.client_id = client_id
        self.idempotency_key = idempotency_key
        # Called once, at the first text or the end of the turn: admission.py's slot is released then.
        self._on_opened = on_opened
        self.message_id: int | None = None
        self.user_message_id: int | None = None
        self.seq = 0
        self.text = ""
        self.status: str | None = None
        self.error: dict[str, Any] | None = None
        self.citations: list[dict[str, Any]] = []
        self.usage: dict[str, Any] = {}
        self.done: ev.Done | None = None
        self.attempts: list[dict[str, Any]] | None = None  # from the final event, when it carries them
        self.finished = asyncio.Event()
        self._pending: list[str] = []
        self._outbox: list[dict[str, Any]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._stop_requested = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")
        self._interval = settings.STREAM_COALESCE_MS / 1000
        self._started = time.monotonic()
        self._first_text_at: float | None = None

    # --- control -----------------------------------------------------------------------------
    def detach(self) -> None:
        """The client went away: keep generating and buffering, stop sending."""
        self.send = None

    def stop(self) -> None:
        """Stop generating at the next event; what was produced is kept (`partial`)."""
        self._stop_requested = True

    def start_background(self) -> asyncio.Task:
        # A fresh context: the turn must not inherit the request's thread-sensitive executor (asgiref
        # binds it to the request, and it is gone once the response has started), nor anything else
        # of the caller's. run() sets the tenant itself.
        task = asyncio.get_running_loop().create_task(self.run(), context=contextvars.Context())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
        return task

    async def run_detached(self) -> None:
        """Run the turn in its own task and wait for it: a client that hangs up mid-request cancels
        only the wait, and the answer is still finished and stored."""
        await asyncio.shield(self.start_background())

    # --- the turn ------------------------------------------------------------------------------
    async def run(self) -> None:
        # Set here, inside the turn's own task: start_background runs it in a fresh context.
        trying = evaluating(self.candidate) if self.candidate is not None else contextlib.nullcontext()
        traced = span("answer.turn", tenant_id=self.tenant.pk, bot_id=self.bot.public_id, channel=self.channel)
        with tenant_context(self.tenant), trying, traced:
            await self._run()

    async def _run(self) -> None:
        metrics.ACTIVE_STREAMS.inc()
        sender = asyncio.get_running_loop().create_task(self._sender())
        generator = answer_stream(
            bot=self.bot,
            conversation=self.conversation,
            user_message=self.user_message,
            idempotency_key=self.idempotency_key,
        )
        deadline = self._started + settings.ANSWER_MAX_SECONDS
        try:
            async for event in generator:
                self._handle(event)
                # After Done/Error the generator ends by itself; closing it early would mean `partial`.
                if self.status is None and (self._stop_requested or time.monotonic() > deadline):
                    break
        except AppError as exc:  # e.g. quota_exceeded raised before the answer started
            self._fail(exc.code, exc.message, getattr(exc, "retry_after", None) or exc.extra.get("retry_after"))
        finally:
            if self.status is None:
                # Stopped, timed out or cut short: closing the generator settles the message `partial`.
                await generator.aclose()
                if self.message_id is not None:
                    self._flush_pending()
                    self.status = Message.Status.PARTIAL
                    self._emit({"type": "end", "status": "partial", "usage": self.usage, "content": self.text})
            self._closing = True
            self._wakeup.set()
            await sender
            metrics.ACTIVE_STREAMS.dec()
            await self._record_attempts()
            if self.message_id is not None and self._stop_requested:
                # Only a stopped answer can have a flag worth a round trip: one set after the last
                # check is never read again (message ids are not reused) and expires by itself.
                with contextlib.suppress(Exception):
                    await stream_clear_stop(message_id=self.message_id)
            self._finish()

    def _handle(self, event: ev.AnswerEvent) -> None:
        if isinstance(event, ev.Delta):
            self._on_delta(event.text)
        elif isinstance(event, ev.Start):
            self.message_id = event.assistant_message_id
            self.user_message_id = event.user_message_id
            RUNNING[self.message_id] = self
            self._emit(
                {
                    "type": "start",
                    "message_id": event.assistant_message_id,
                    "user_message_id": event.user_message_id,
                    "conversation_id": event.conversation_id,
                    "client_id": self.client_id,
                },
                numbered=False,
            )
        elif isinstance(event, ev.Reset):
            self._flush_pending()
            self.text = ""
            self._emit({"type": "reset", "reason": event.reason})
        elif isinstance(event, ev.Citations):
            self._flush_pending()
            self.citations = [citation_public(c) for c in event.items]
            self._emit({"type": "citations", "items": self.citations})
        elif isinstance(event, ev.Done):
            self._flush_pending()
            self.done = event
            self.attempts = event.attempts
            self.text = event.content
            self.usage = {"tokens_in": event.tokens_in, "tokens_out": event.tokens_out}
            self.status = Message.Status.COMPLETE
            self._emit({"type": "end", "status": "complete", "usage": self.usage, "content": event.content})
        elif isinstance(event, ev.Error):
            self._flush_pending()
            self.attempts = event.attempts
            self._fail(event.code, event.message, event.retry_after)

    def _fail(self, code: str, message: str, retry_after: float | None) -> None:
        self.error = {"code": code, "message": message}
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message, "client_id": self.client_id}
        if retry_after is not None:
            frame["retry_after"] = retry_after
        if self.message_id is None:
            # Refused before an answer existed (empty message, quota…): nothing to number or resume.
            self.status = "refused"
            self._emit(frame, numbered=False)
            return
        frame["message_id"] = self.message_id
        self.status = Message.Status.FAILED
        self._emit(frame, numbered=False)
        self._emit({"type": "end", "status": "failed", "usage": self.usage, "content": self.text, "error": self.error})

    # --- frames ------------------------------------------------------------------------------
    def _on_delta(self, text: str) -> None:
        if not text:
            return
        if self._first_text_at is None:
            self._first_text_at = time.monotonic()
            self._opened()
        self.text += text
        self._pending.append(text)
        now = asyncio.get_running_loop().time()
        if now - self._last_flush >= self._interval:
            self._flush_pending()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self._interval - (now - self._last_flush), self._flush_pending
            )

    def _flush_pending(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        self._last_flush = asyncio.get_running_loop().time()
        text, self._pending = "".join(self._pending), []
        self._emit({"type": "delta", "text": text})

    def _emit(self, frame: dict[str, Any], *, numbered: bool = True) -> None:
        """Queue a frame in order. Numbered frames get the next `seq` and go to the resume buffer."""
        if numbered:
            self.seq += 1
            frame = {"type": frame["type"], "message_id": self.message_id, "seq": self.seq, **frame}
        self._outbox.append(frame)
        self._wakeup.set()

    async def _sender(self) -> None:
        """Deliver queued frames to the client in order, and hand numbered ones to the process's
        resume-buffer writer (which batches every answer's frames into one Redis write per tick)."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            frames, self._outbox = self._outbox, []
            await self._deliver(frames)
            numbered = [f for f in frames if "seq" in f]
            if numbered and self.message_id is not None:
                stream_batcher().add(self.message_id, numbered, self.stop)
            if self._closing and not self._outbox:
                return

    async def _deliver(self, frames: list[dict[str, Any]]) -> None:
        send = self.send
        if send is None:
            return
        try:
            for frame in frames:
                await send(frame)
        except Exception:  # the client is gone; keep generating for a resume
            self.send = None

    async def _record_attempts(self) -> None:
        """Provider errors and breaker states: from the final event, or else (a stopped or cut turn)
        from the turn's trace (tenant context is inherited)."""
        if self.message_id is None:
            return
        attempts = self.attempts
        if attempts is None:
            try:
                # On the thread pool: metrics must not queue behind turns on the shared database thread.
                trace = await sync_to_async(_trace_of, thread_sensitive=False)(
                    message_id=self.message_id, tenant=self.tenant
                )
            except Exception:  # metrics must never break a turn
                logger.exception("could not read the trace of message %s", self.message_id)
                return
            attempts = trace.attempts if trace else None
        for attempt in attempts or []:
            labels = {"provider": str(attempt.get("provider", "")), "model": str(attempt.get("model", ""))}
            outcome = attempt.get("outcome")
            if outcome == "error":
                metrics.PROVIDER_ERRORS.labels(**labels).inc()
            if outcome == "skipped_open_breaker":
                metrics.BREAKER_OPEN.labels(**labels).set(1)
            elif outcome == "ok":
                metrics.BREAKER_OPEN.labels(**labels).set(0)

    def _opened(self) -> None:
        callback, self._on_opened = self._on_opened, None
        if callback is not None:
            callback()

    def _finish(self) -> None:
        self._opened()
        if self.message_id is not None:
            RUNNING.pop(self.message_id, None)
        outcome = self.status or "unknown"
        total = time.monotonic() - self._started
        model = self.done.model if self.done else ""
        metrics.TURNS.labels(channel=self.channel, outcome=outcome).inc()
        metrics.ANSWER_LATENCY.labels(channel=self.channel, outcome=outcome).observe(total)
        if self._first_text_at is not None:
            metrics.TIME_TO_FIRST_TOKEN.labels(channel=self.channel).observe(self._first_text_at - self._started)
        if self.done is not None:
            metrics.TOKENS.labels(direction="in", model=model).inc(self.done.tokens_in)
            metrics.TOKENS.labels(direction="out", model=model).inc(self.done.tokens_out)
            metrics.COST.labels(model=model).inc(float(self.done.cost))
        line = {
            "event": "chat_turn",
            "tenant": self.bot.tenant_id,
            "bot": self.bot.pk,
            "conversation": self.conversation.pk,
            "message": self.message_id,
            "channel": self.channel,
            "model": model,
            "tokens_in": self.done.tokens_in if self.done else 0,
            "tokens_out": self.done.tokens_out if self.done else 0,
            "cost": str(self.done.cost if self.done else Decimal("0")),
            "latency_ms": {
                **({k: v for k, v in self.done.latency.items()} if self.done else {}),
                "relay_first_text_ms": round((self._first_text_at - self._started) * 1000, 1)
                if self._first_text_at
                else None,
                "relay_total_ms": round(total * 1000, 1),
            },
            "frames": self.seq,
            "outcome": outcome,
            "error": self.error["code"] if self.error else None,
        }
        logger.info(json.dumps(line, default=str))
        self.finished.set()


def _trace_of(*, message_id: int, tenant: Tenant) -> Trace | None:
    with tenant_context(tenant):
        return Trace.objects.filter(message_id=message_id).first()


ERROR_STATUS = {"quota_exceeded": 402, "rate_limited": 429, "tenant_suspended": 403, "not_found": 404}


class QueuedTurn:
    """A relay running in the background whose frames are read from a queue (SSE, OpenAI streaming).

    `first_frame()` waits for `start` and turns a refusal (quota, rate limit, empty message…) into
    an AppError, so HTTP clients get a real status code before any streaming starts.
    """

    def __init__(self, relay: AnswerRelay) -> None:
        self.relay = relay
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        relay.send = self.queue.put

    async def first_frames(self) -> list[dict[str, Any]]:
        """Start the turn and read up to its first frame after `start`.

        A refusal (quota, rate limit, empty message…), before or right after `start`, becomes an
        AppError, so HTTP clients get a real status code before any streaming starts.
        """
        task = self.relay.start_background()
        task.add_done_callback(lambda _task: self.queue.put_nowait(None))
        frames: list[dict[str, Any]] = []
        while True:
            frame = await self.queue.get()
            if frame is None or frame["type"] == "error":
                if frame is not None and frame["code"] not in ERROR_STATUS and frames:
                    frames.append(frame)  # a failure mid-answer: stream it like any other frame
                    return frames
                error = frame or {"code": "internal_error", "message": "The answer could not start. Please retry."}
                raise AppError(
                    error["message"],
                    code=error["code"],
                    status=ERROR_STATUS.get(error["code"], 400),
                    **({"retry_after": error["retry_after"]} if error.get("retry_after") is not None else {}),
                )
            frames.append(frame)
            if frame["type"] != "start":
                return frames

    async def frames(self) -> Any:
        """The remaining frames; if the client goes away, the answer still finishes and is stored."""
        try:
            while True:
                frame = await self.queue.get()
                if frame is None:
                    return
                yield frame
        finally:
            self.relay.detach()
