"""The visitor WebSocket, `/ws/widget/<bot public id>/?token=…` (protocol: docs/protocol.md).

Thin on purpose: authentication is in access.py, writes in services.py, the turn itself in
relay.py, resume buffers in streams.py, limits in ratelimit.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError, connection
from redis.exceptions import RedisError

from chatbot_saas.errors import AppError, NotFound
from tenants.context import tenant_context
from tenants.models import Membership
from tenants.selectors import membership_for

from . import services
from .access import client_ip, widget_socket_authenticate
from .admission import admission_gate
from .handoff_consumer import HandoffVisitorMixin
from .idempotency import idempotency_key_check, turn_for_idempotency_key
from .models import Conversation, Message
from .ratelimit import RateLimited, rate_limit_take, visitor_buckets
from .relay import RUNNING, AnswerRelay
from .selectors import citation_public, message_for_visitor
from .streams import stream_exists, stream_follow, stream_request_stop
from .suspension import SuspensionWatchMixin

logger = logging.getLogger(__name__)

CLOSE_POLICY = 4403
CLOSE_NOT_FOUND = 4404
# daphne closes frames over --websocket-max-message-size (= WS_MAX_FRAME_BYTES, see Procfile) with
# 1009 itself; an application may not send 1009, so a server started without the flag gets 4009.
CLOSE_TOO_BIG = 4009
# Per-socket frame budget (any frame type): a cheap in-process guard before any database work.
FRAME_BURST = 30
FRAME_RATE = 10.0


def _db(fn: Any) -> Any:
    """This consumer's short, independent queries run on the thread pool rather than the one shared
    thread-sensitive thread, so they do not queue behind every turn's database work. Each pool
    thread keeps its connection (a new Postgres connection per query would cost more than the
    query); a connection that failed is dropped, and the next call reconnects."""

    def call(**kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except DatabaseError:
            connection.close()
            raise

    return sync_to_async(call, thread_sensitive=False)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def same_host(*, origin: str | None, host: str | None) -> bool:
    """Whether the page that opened the socket was served by this app (a cross-site page must not
    ride on a member's session cookie)."""
    if not origin or not host:
        return False
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == host.strip().lower()


class JsonFrameConsumer(AsyncWebsocketConsumer):
    """What the visitor and playground sockets share: JSON text frames of at most
    WS_MAX_FRAME_BYTES, a per-socket frame budget, dispatch of `{"type": t}` to `on_<t>` in the
    tenant's context, and error frames with a stable code. Subclasses set `self.tenant` once the
    socket is authenticated; until then frames are ignored."""

    # No channel layer: nothing is sent to these consumers by name (resume and stop go through
    # Redis streams and flags), and a layer costs every socket a Redis subscription loop.
    channel_layer_alias = "no-channel-layer"
    tenant: Any = None
    _budget = float(FRAME_BURST)
    _budget_at = 0.0

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.tenant is None:
            return
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > settings.WS_MAX_FRAME_BYTES:
            await self.close(code=CLOSE_TOO_BIG)
            return
        if not self._take_frame_budget():
            await self._send_error("rate_limited", "Too many frames. Slow down.", retry_after=1.0)
            return
        if bytes_data is not None:
            await self._send_error("bad_frame", "Frames must be JSON text, not binary.")
            return
        try:
            frame = json.loads(text_data or "")
        except ValueError:
            await self._send_error("bad_frame", "The frame is not valid JSON.")
            return
        handler = getattr(self, f"on_{frame.get('type')}", None) if isinstance(frame, dict) else None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str) or handler is None:
            await self._send_error("bad_frame", "Unknown frame type. See docs/protocol.md.")
            return
        with tenant_context(self.tenant):
            try:
                await handler(frame)
            except AppError as exc:
                await self._send_error(
                    exc.code, exc.message, retry_after=exc.extra.get("retry_after"), client_id=frame.get("client_id")
                )
            except RedisError as exc:
                # Limits and resume buffers live in Redis: when it is unreachable or its pool stays
                # busy, refuse this frame (nothing was stored yet) and keep the socket usable.
                logger.warning("Redis unavailable for a %s frame: %s", frame.get("type"), exc)
                await self._send_error(
                    "busy",
                    "The assistant is busy. Please try again in a moment.",
                    retry_after=2.0,
                    client_id=frame.get("client_id"),
                )

    async def member_handshake(
        self,
        *,
        place: str,
        anonymous: tuple[str, str, int],
        allowed: Callable[[Membership], bool] | None = None,
    ) -> Membership | None:
        """The dashboard sockets' shared checks (playground, inbox): a signed-in user (the session
        cookie, AuthMiddlewareStack), a page of this app (`place` names it in the refusal), a member
        of the URL's workspace who passes `allowed` (else the same 4404 as for no such workspace),
        and a workspace that is not suspended (4403). Returns the membership and sets
        `self.tenant`; or refuses the socket, says why, and returns None. `anonymous` is the
        (code, message, close code) for a visitor who is not signed in."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            code, message, close_code = anonymous
            await self.refuse(code, message, close_code=close_code)
            return None
        if not same_host(origin=_header(self.scope, b"origin"), host=_header(self.scope, b"host")):
            await self.refuse(
                "origin_not_allowed", f"The {place} only opens from this dashboard.", close_code=CLOSE_POLICY
            )
            return None
        membership = await _db(membership_for)(user=user, tenant_slug=self.scope["url_route"]["kwargs"]["tenant_slug"])
        if membership is None or (allowed is not None and not allowed(membership)):
            await self.refuse("workspace_not_found", "No such workspace.", close_code=CLOSE_NOT_FOUND)
            return None
        if not membership.tenant.is_active:
            await self.refuse(
                "tenant_suspended", "This workspace is suspended. See its billing page.", close_code=CLOSE_POLICY
            )
            return None
        self.tenant = membership.tenant
        return membership

    async def refuse(self, code: str, message: str, *, close_code: int) -> None:
        """Accept only to say why: one error frame the client can show, then the close code."""
        await self.accept()
        await self._send_error(code, message)
        await self.close(code=close_code)

    def _take_frame_budget(self) -> bool:
        now = time.monotonic()
        self._budget = min(FRAME_BURST, self._budget + (now - self._budget_at) * FRAME_RATE)
        self._budget_at = now
        if self._budget < 1:
            return False
        self._budget -= 1
        return True

    async def _send_frame(self, frame: dict[str, Any]) -> None:
        # orjson: a tenth of json.dumps' CPU, for every frame of every answer (same compact JSON).
        await self.send(text_data=orjson.dumps(frame).decode())

    async def _send_error(self, code: str, message: str, **extra: Any) -> None:
        frame = {"type": "error", "code": code, "message": message}
        frame.update({k: v for k, v in extra.items() if v is not None})
        await self._send_frame(frame)


class WidgetConsumer(SuspensionWatchMixin, HandoffVisitorMixin, JsonFrameConsumer):
    async def connect(self) -> None:
        self.bot = None
        self.relays: dict[int, AnswerRelay] = {}
        self.followers: set[asyncio.Task] = set()
        # Per answer, on this socket: its resume follower, the highest `seq` sent, and whether its
        # `end` was sent. A repeated `resume` uses them to replay nothing twice (docs/protocol.md).
        self.resumes: dict[int, asyncio.Task] = {}
        self.sent_seq: dict[int, int] = {}
        self.sent_end: set[int] = set()
        self.conversation_id: int | None = None
        self._budget = float(FRAME_BURST)
        self._budget_at = time.monotonic()
        token = (parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0]
        try:
            self.bot, self.claims = await _db(widget_socket_authenticate)(
                bot_public_id=self.scope["url_route"]["kwargs"]["bot_public_id"],
                token=token,
                origin=_header(self.scope, b"origin"),
            )
        except AppError as exc:
            await self.refuse(
                exc.code, exc.message, close_code=CLOSE_NOT_FOUND if exc.code == "bot_not_found" else CLOSE_POLICY
            )
            return
        self.tenant = self.bot.tenant
        client = self.scope.get("client") or [None]
        self.ip = client_ip(remote_addr=client[0], forwarded_for=_header(self.scope, b"x-forwarded-for"))
        await self.suspension_watch_start()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for relay in self.relays.values():
            relay.detach()  # the answer goes on, and is stored complete
        for task in self.followers:
            task.cancel()
        await self.handoff_stop_listening()
        await self.suspension_watch_stop()

    # --- client frames --------------------------------------------------------------------
    async def on_message(self, frame: dict[str, Any]) -> None:
        text = services.chat_text_check(frame.get("text"))
        client_id = frame.get("client_id") if isinstance(frame.get("client_id"), str | int) else None
        key = idempotency_key_check(frame.get("idempotency_key"))
        # Every attempt counts against the limits, even one then refused as busy.
        decision = await rate_limit_take(
            visitor_buckets(tenant_id=self.tenant.pk, bot_id=self.bot.pk, visitor_id=self.claims.visitor_id, ip=self.ip)
        )
        if not decision.allowed:
            raise RateLimited(decision)
        if any(not relay.finished.is_set() for relay in self.relays.values()):
            raise AppError(
                "Wait for the current answer to finish, or stop it, before asking again.", code="answer_in_progress"
            )
        # server_busy past the queue's deadline (admission.py). Before any database work, so that a
        # refusal is told within that deadline even when the database threads are all busy.
        release = await admission_gate().admit()
        try:
            if key is not None and await self._join_sent(key, client_id):
                release()
                return  # a retry of a question already asked: its answer is joined or replayed
            await self._start_turn(text, client_id, key, release)
        except BaseException:
            release()
            raise

    async def _start_turn(self, text: str, client_id: Any, key: str | None, release: Any) -> None:
        conversation = await _db(services.visitor_conversation_for_turn)(
            bot=self.bot,
            visitor_id=self.claims.visitor_id,
            external_user_id=self.claims.external_user_id,
            conversation_id=self.conversation_id,
            channel=self._channel(),
        )
        self.conversation_id = conversation.pk
        if await self.handoff_take_message(conversation, text, client_id):
            release()
            return  # a person answers this conversation (handoff_consumer.py)
        relay = AnswerRelay(
            bot=self.bot,
            tenant=self.tenant,
            conversation=conversation,
            user_message=text,
            channel=self._channel(),
            send=self._send_frame,
            client_id=client_id,
            idempotency_key=key,
            on_opened=release,
        )
        # Forget finished answers; keep the running one so a disconnect can detach it.
        self.relays = {k: r for k, r in self.relays.items() if not r.finished.is_set()}
        relay.start_background()
        self.relays[id(relay)] = relay
        if self._channel() == Conversation.Channel.WIDGET:  # the designer's preview pages nobody
            self.handoff_check_after(relay.finished, conversation.pk)  # the "could not answer" trigger

    async def _join_sent(self, key: str, client_id: Any) -> bool:
        """If this visitor already sent a question with `key`, say so with its `start` frame and
        send its answer from the first frame (the widget drops what it has by `seq`); True then."""
        found = await _db(turn_for_idempotency_key)(key=key, bot=self.bot, visitor_id=self.claims.visitor_id)
        if found is None:
            return False
        question, answer = found
        if answer is None:  # its turn was refused before an answer existed: nothing to join
            return False
        await self._send_frame(
            {
                "type": "start",
                "message_id": answer.pk,
                "user_message_id": question.pk,
                "conversation_id": question.conversation_id,
                "client_id": client_id,
                "replayed": True,
            }
        )
        if any(relay.message_id == answer.pk and not relay.finished.is_set() for relay in self.relays.values()):
            return True  # streaming to this very socket already
        self._resume(answer, 0)
        return True

    async def on_stop(self, frame: dict[str, Any]) -> None:
        message = await self._owned_message(frame)
        relay = RUNNING.get(message.pk)
        if relay is not None:
            relay.stop()
        elif message.status == Message.Status.STREAMING:
            await stream_request_stop(message_id=message.pk)  # produced by another server process

    async def on_resume(self, frame: dict[str, Any]) -> None:
        message = await self._owned_message(frame)
        last_seq = frame.get("last_seq", 0)
        if not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0:
            raise AppError("last_seq must be the last sequence number you received (0 for none).", code="bad_frame")
        self._resume(message, last_seq)

    def _resume(self, message: Message, last_seq: int) -> None:
        previous = self.resumes.get(message.pk)
        if previous is not None:
            # Resumed on this socket already: its follower sends (or sent) everything after the
            # first resume's last_seq, up to `end`. A second follower would send it all again.
            if not previous.done() or message.pk in self.sent_end:
                return
            # The follower stopped early (Redis failed): go on after what this socket was sent.
            last_seq = max(last_seq, self.sent_seq.get(message.pk, 0))
        for relay in self.relays.values():
            if relay.message_id == message.pk:
                relay.detach()  # this socket now reads the buffer, so it must not also get live frames
        task = asyncio.get_running_loop().create_task(self._follow(message, last_seq))
        self.resumes[message.pk] = task
        self.followers.add(task)
        task.add_done_callback(self.followers.discard)

    async def on_feedback(self, frame: dict[str, Any]) -> None:
        message = await self._owned_message(frame)
        previous = message.feedback
        await _db(services.message_feedback_set)(
            message=message, value=frame.get("value"), comment=frame.get("comment", "")
        )
        await self._send_frame({"type": "feedback_ok", "message_id": message.pk})
        if self._channel() == Conversation.Channel.WIDGET:
            await self.handoff_after_rating(message, previous)  # the thumbs-down trigger

    async def on_new_conversation(self, frame: dict[str, Any]) -> None:
        conversation = await _db(services.conversation_start)(
            bot=self.bot,
            channel=self._channel(),
            visitor_id=self.claims.visitor_id,
            external_user_id=self.claims.external_user_id,
        )
        self.conversation_id = conversation.pk
        await self._send_frame({"type": "conversation", "conversation_id": conversation.pk})

    # --- helpers ----------------------------------------------------------------------------
    def _channel(self) -> str:
        # The designer's live preview is playground traffic (kept out of visitor analytics).
        if self.claims.channel == Conversation.Channel.PLAYGROUND:
            return Conversation.Channel.PLAYGROUND
        return Conversation.Channel.WIDGET

    async def _owned_message(self, frame: dict[str, Any]) -> Message:
        message = await _db(message_for_visitor)(
            bot=self.bot, visitor_id=self.claims.visitor_id, message_id=frame.get("message_id")
        )
        if message is None:
            raise NotFound("No such message in your conversations.")
        return message

    async def _follow(self, message: Message, last_seq: int) -> None:
        """Replay the buffered frames after `last_seq`, then the live tail, until `end`."""
        with tenant_context(self.tenant):
            if message.status != Message.Status.STREAMING and not await stream_exists(message_id=message.pk):
                await self._send_settled(message.pk)
                return
            async for frame in stream_follow(message_id=message.pk, last_seq=last_seq):
                if frame is not None:
                    await self._send_frame(frame)
                    continue
                # Quiet for a while: if the answer settled without an `end` (its server died), say so.
                current = await Message.objects.filter(pk=message.pk).afirst()
                if current is None or current.status != Message.Status.STREAMING:
                    await self._send_settled(message.pk)
                    return

    async def _send_settled(self, message_id: int) -> None:
        message = await Message.objects.filter(pk=message_id).afirst()
        if message is None:
            return
        await self._send_frame(
            {
                "type": "end",
                "message_id": message.pk,
                "seq": None,
                "status": message.status,
                "usage": {"tokens_in": message.tokens_in, "tokens_out": message.tokens_out},
                "content": message.content,
                "citations": [citation_public(c) for c in message.citations or []],
                "replayed": True,
            }
        )

    async def _send_frame(self, frame: dict[str, Any]) -> None:
        await super()._send_frame(frame)
        message_id, seq = frame.get("message_id"), frame.get("seq")
        if isinstance(seq, int):
            self.sent_seq[message_id] = max(seq, self.sent_seq.get(message_id, 0))
        if frame["type"] == "end":
            self.sent_end.add(message_id)
