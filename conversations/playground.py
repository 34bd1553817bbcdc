"""The playground socket, `/ws/playground/<tenant slug>/`: a signed-in member chats with any of the
workspace's bots, with its published prompt or any other version, streamed with the widget's frames.

Thin like the widget's consumer (consumers.py), and it shares its frame handling: the session
cookie authenticates (AuthMiddlewareStack in routing.py), the page must come from this app's own
host, the turn is the widget's AnswerRelay with channel `playground`, and a chosen version is
put in place of the published one through the evaluation runs' candidate mechanism
(pipeline/candidate.py), so the published prompt stays live for visitors meanwhile.

Client frames: `message` {text, bot_id, prompt_version (a number, or null for the published
one), client_id}, `stop` {message_id} and `new_conversation` {}. Server frames: the widget's
(`start`, `delta`, `citations`, `reset`, `end`, `error`) plus `conversation`.
"""

from __future__ import annotations

from typing import Any

from chatbot_saas.errors import AppError, NotFound

from . import services
from .consumers import CLOSE_POLICY, JsonFrameConsumer, _db
from .models import Conversation, Message
from .pipeline.candidate import Candidate
from .ratelimit import RateLimited, rate_limit_take, visitor_buckets
from .relay import RUNNING, AnswerRelay
from .selectors import playground_message_of, playground_target, playground_visitor_id
from .streams import stream_request_stop
from .suspension import SuspensionWatchMixin


class PlaygroundConsumer(SuspensionWatchMixin, JsonFrameConsumer):
    async def connect(self) -> None:
        self.relays: dict[int, AnswerRelay] = {}
        self.conversation_id: int | None = None
        membership = await self.member_handshake(
            place="playground", anonymous=("not_signed_in", "Sign in to use the playground.", CLOSE_POLICY)
        )
        if membership is None:
            return
        self.user_id: int = membership.user_id
        client = self.scope.get("client") or [None]
        self.ip = client[0] or "unknown"
        await self.suspension_watch_start()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for relay in self.relays.values():
            relay.detach()  # the answer goes on, and is stored complete
        await self.suspension_watch_stop()

    async def on_message(self, frame: dict[str, Any]) -> None:
        text = services.chat_text_check(frame.get("text"))
        client_id = frame.get("client_id") if isinstance(frame.get("client_id"), str | int) else None
        target = await _db(playground_target)(bot_id=frame.get("bot_id"), prompt_version=frame.get("prompt_version"))
        if target is None:
            raise NotFound("No such bot or prompt version in this workspace.", code="bot_not_found")
        bot, version = target
        # A member's turns count against the same limits as a visitor's: they cost the same tokens.
        decision = await rate_limit_take(
            visitor_buckets(
                tenant_id=self.tenant.pk,
                bot_id=bot.pk,
                visitor_id=playground_visitor_id(user_id=self.user_id),
                ip=self.ip,
            )
        )
        if not decision.allowed:
            raise RateLimited(decision)
        if any(not relay.finished.is_set() for relay in self.relays.values()):
            raise AppError(
                "Wait for the current answer to finish, or stop it, before asking again.", code="answer_in_progress"
            )
        conversation = await _db(services.playground_conversation_for_turn)(
            bot=bot, user_id=self.user_id, conversation_id=self.conversation_id
        )
        self.conversation_id = conversation.pk
        relay = AnswerRelay(
            bot=bot,
            tenant=self.tenant,
            conversation=conversation,
            user_message=text,
            channel=Conversation.Channel.PLAYGROUND,
            send=self._send_frame,
            client_id=client_id,
            candidate=_candidate(version),
        )
        self.relays = {k: r for k, r in self.relays.items() if not r.finished.is_set()}
        relay.start_background()
        self.relays[id(relay)] = relay

    async def on_stop(self, frame: dict[str, Any]) -> None:
        message = await _db(playground_message_of)(user_id=self.user_id, message_id=frame.get("message_id"))
        if message is None:
            raise NotFound("No such answer in your playground conversations.")
        relay = RUNNING.get(message.pk)
        if relay is not None:
            relay.stop()
        elif message.status == Message.Status.STREAMING:
            await stream_request_stop(message_id=message.pk)  # produced by another server process

    async def on_new_conversation(self, frame: dict[str, Any]) -> None:
        # The next message starts a conversation with no memory (see playground_conversation_for_turn).
        self.conversation_id = None
        await self._send_frame({"type": "conversation", "conversation_id": None})


def _candidate(version: Any) -> Candidate | None:
    """A version other than the published one answers in its place; the published one needs none."""
    if version is None or version.is_published:
        return None
    return Candidate(prompt_text=version.text, prompt_number=version.number)
