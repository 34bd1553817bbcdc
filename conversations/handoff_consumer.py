"""The visitor socket's side of human handoff (frames in docs/protocol.md, "Human handoff").

A mixin for WidgetConsumer, kept apart so the answer path stays as it was. The widget's socket has
no channel layer of its own (most never need one); once its conversation is with a person, it
listens to the conversation's group on the Redis channel layer in a task of its own, so an agent on
another daphne process reaches it. Whatever it missed is stored and comes back with `handoff_sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer

from chatbot_saas.errors import AppError
from tenants.context import tenant_context

from .handoff import handoff_request, handoff_sync, handoff_visitor_message
from .handoff_bus import bus_send, conversation_group
from .handoff_triggers import handoff_after_answer, handoff_after_feedback
from .leads import lead_submit
from .models import Conversation, Message
from .ratelimit import Bucket, RateLimited, configured_rate, rate_limit_take

logger = logging.getLogger(__name__)


def lead_buckets(*, bot_id: int, visitor_id: str, ip: str) -> list[Bucket]:
    return [
        Bucket("lead_visitor", f"{bot_id}:{visitor_id}", configured_rate("RATE_LIMIT_LEAD_VISITOR")),
        Bucket("lead_ip", ip, configured_rate("RATE_LIMIT_LEAD_IP")),
    ]


class HandoffVisitorMixin:
    """Needs from the consumer: bot, claims, ip, conversation_id, tenant, _send_frame, _channel."""

    # Provided by WidgetConsumer (annotations only: nothing here shadows them).
    bot: Any
    claims: Any
    ip: str
    conversation_id: int | None
    _send_frame: Callable[[dict[str, Any]], Awaitable[None]]
    _channel: Callable[[], str]

    tenant: Any
    _listener: asyncio.Task | None = None
    _listening_to: int | None = None
    # Trigger checks waiting for an answer to be stored (kept referenced so they are not collected).
    _trigger_checks: set[asyncio.Task] | None = None

    async def handoff_stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        self._listener = None
        self._listening_to = None

    def _listen(self, conversation_id: int) -> None:
        if self._listening_to == conversation_id and self._listener is not None and not self._listener.done():
            return
        if self._listener is not None:
            self._listener.cancel()
        self._listening_to = conversation_id
        self._listener = asyncio.get_running_loop().create_task(self._follow_group(conversation_id))

    async def _follow_group(self, conversation_id: int) -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        group = conversation_group(conversation_id)
        await layer.group_add(group, channel)
        try:
            while True:
                message = await layer.receive(channel)
                frame = message.get("frame") or {}
                # The visitor's own words and typing come back through the group: not echoed.
                if frame.get("type") == "visitor_message" or frame.get("from") == "visitor":
                    continue
                await self._send_frame(frame)
        finally:
            with contextlib.suppress(Exception):
                await layer.group_discard(group, channel)

    def handoff_check_after(self, finished: asyncio.Event, conversation_id: int) -> None:
        """Once the answer being produced is stored (`finished`), see whether the "could not answer"
        trigger fires. Not cancelled when the socket closes: the answer is stored anyway, and the
        conversation should reach the inbox even if the visitor's tab went away meanwhile."""
        if self._trigger_checks is None:
            self._trigger_checks = set()
        task = asyncio.get_running_loop().create_task(self._after_answer(finished, conversation_id))
        self._trigger_checks.add(task)
        task.add_done_callback(self._trigger_checks.discard)

    async def _after_answer(self, finished: asyncio.Event, conversation_id: int) -> None:
        from .consumers import _db

        await finished.wait()
        with tenant_context(self.tenant):
            reply = await _db(handoff_after_answer)(bot=self.bot, conversation_id=conversation_id)
        if reply is not None:
            await self._handoff_reply(reply)

    async def handoff_after_rating(self, message: Message, previous: str) -> None:
        from .consumers import _db

        reply = await _db(handoff_after_feedback)(bot=self.bot, message=message, previous=previous)
        if reply is not None:
            await self._handoff_reply(reply)

    async def _handoff_reply(self, reply: dict[str, Any]) -> None:
        if reply.get("conversation_id"):
            self.conversation_id = reply["conversation_id"]
            self._listen(reply["conversation_id"])
        with contextlib.suppress(Exception):  # the visitor left: the inbox has the conversation anyway
            await self._send_frame(reply)

    async def handoff_take_message(self, conversation: Conversation, text: str, client_id: Any) -> bool:
        """While a person handles the conversation, the bot stays quiet: store the message for the
        agent and acknowledge it. Returns False when the bot should answer."""
        if not conversation.with_human:
            return False
        from .consumers import _db

        message = await _db(handoff_visitor_message)(conversation=conversation, text=text)
        self._listen(conversation.pk)
        await self._send_frame(
            {"type": "sent", "message_id": message.pk, "conversation_id": conversation.pk, "client_id": client_id}
        )
        return True

    async def on_handoff_request(self, frame: dict[str, Any]) -> None:
        from .consumers import _db

        reply = await _db(handoff_request)(
            bot=self.bot,
            visitor_id=self.claims.visitor_id,
            external_user_id=self.claims.external_user_id,
            conversation_id=self.conversation_id,
            page_url=frame.get("page_url") or "",
        )
        await self._handoff_reply(reply)

    async def on_handoff_sync(self, frame: dict[str, Any]) -> None:
        from .consumers import _db

        conversation, frames = await _db(handoff_sync)(
            bot=self.bot, visitor_id=self.claims.visitor_id, after_id=frame.get("after_id"), channel=self._channel()
        )
        if conversation is not None and conversation.with_human:
            self.conversation_id = conversation.pk
            self._listen(conversation.pk)
        for item in frames:
            await self._send_frame(item)
        await self._send_frame({"type": "handoff_synced"})

    async def on_lead(self, frame: dict[str, Any]) -> None:
        from .consumers import _db

        decision = await rate_limit_take(
            lead_buckets(bot_id=self.bot.pk, visitor_id=self.claims.visitor_id, ip=self.ip)
        )
        if not decision.allowed:
            raise RateLimited(decision)
        try:
            lead = await _db(lead_submit)(
                bot=self.bot,
                visitor_id=self.claims.visitor_id,
                conversation_id=self.conversation_id,
                data=frame.get("fields"),
                reason=frame.get("reason"),
            )
        except AppError as exc:
            if exc.code != "lead_invalid":
                raise
            await self._send_frame(
                {"type": "error", "code": exc.code, "message": exc.message, "fields": exc.extra.get("fields", {})}
            )
            return
        await self._send_frame({"type": "lead_ok", "lead_id": lead.pk})

    async def on_typing(self, frame: dict[str, Any]) -> None:
        if self._listening_to is None:
            return  # typing only matters to a person reading along
        await bus_send(
            conversation_group(self._listening_to),
            {"type": "typing", "from": "visitor", "conversation_id": self._listening_to, "on": bool(frame.get("on"))},
        )
