"""The inbox socket, `/ws/inbox/<tenant slug>/`: an agent's live view of the workspace's handoffs.

Members only (the session cookie, AuthMiddlewareStack in routing.py), from this app's own pages,
with the agent permission: anyone else is refused with 4404 (`workspace_not_found`), the socket's
404. A suspended workspace is refused with 4403.

Client frames: `watch` {conversation_id} (follow one conversation), `reply` {conversation_id,
text, client_id} (answered with `reply_ok` {client_id, id} once stored, or an `error` with the
same client_id: the agent always learns whether it was stored), `typing` {conversation_id, on}.
Server frames: `inbox_changed` {conversation_id}, and for the watched conversation `handoff`,
`visitor_message`, `agent_message`, `typing` (see handoff.py).
"""

from __future__ import annotations

from typing import Any

from chatbot_saas.errors import NotFound

from .consumers import CLOSE_NOT_FOUND, CLOSE_POLICY, JsonFrameConsumer, _db
from .handoff import handoff_conversation_get, handoff_reply
from .handoff_bus import bus_send, conversation_group, inbox_group


class InboxConsumer(JsonFrameConsumer):
    # Unlike the visitor's socket, every inbox listens: it is named by the groups it joins.
    channel_layer_alias = "default"

    async def connect(self) -> None:
        self.watching: int | None = None
        membership = await self.member_handshake(
            place="inbox",
            anonymous=("workspace_not_found", "No such workspace.", CLOSE_NOT_FOUND),
            allowed=lambda m: m.is_agent_capable,
        )
        if membership is None:
            return
        self.user = self.scope["user"]
        await self.channel_layer.group_add(inbox_group(self.tenant.pk), self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.tenant is None:
            return
        await self.channel_layer.group_discard(inbox_group(self.tenant.pk), self.channel_name)
        if self.watching is not None:
            await self.channel_layer.group_discard(conversation_group(self.watching), self.channel_name)

    async def handoff_frame(self, event: dict[str, Any]) -> None:
        frame = event.get("frame") or {}
        if frame.get("from") == "agent" and frame.get("user_id") == self.user.pk:
            return  # one's own typing
        await self._send_frame(frame)

    async def inbox_suspended(self, event: dict[str, Any]) -> None:
        await self._send_error("tenant_suspended", "This workspace is suspended. See its billing page.")
        await self.close(code=CLOSE_POLICY)

    async def on_watch(self, frame: dict[str, Any]) -> None:
        conversation = await _db(handoff_conversation_get)(conversation_id=frame.get("conversation_id"))
        if self.watching is not None:
            await self.channel_layer.group_discard(conversation_group(self.watching), self.channel_name)
        self.watching = conversation.pk
        await self.channel_layer.group_add(conversation_group(conversation.pk), self.channel_name)
        await self._send_frame({"type": "watching", "conversation_id": conversation.pk})

    async def on_reply(self, frame: dict[str, Any]) -> None:
        client_id = frame.get("client_id") if isinstance(frame.get("client_id"), str | int) else None
        message = await _db(handoff_reply)(
            conversation_id=frame.get("conversation_id"), user=self.user, text=frame.get("text")
        )
        await self._send_frame({"type": "reply_ok", "client_id": client_id, "id": message.pk})

    async def on_typing(self, frame: dict[str, Any]) -> None:
        if self.watching is None or frame.get("conversation_id") != self.watching:
            raise NotFound("Watch the conversation first.")
        await bus_send(
            conversation_group(self.watching),
            {
                "type": "typing",
                "from": "agent",
                "user_id": self.user.pk,
                "conversation_id": self.watching,
                "on": bool(frame.get("on")),
            },
        )
