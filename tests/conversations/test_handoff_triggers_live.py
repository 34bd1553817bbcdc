"""Handoff triggers through the widget's real socket on a live daphne: two "I don't know" answers
in a row, or a thumbs-down, and the visitor waits for a person while the inbox hears of it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from django.test import Client

from conversations.models import NO_ANSWER_MODEL, Conversation, HandoffStatus, Message
from tests.bots.factories import BotFactory, HandoffSettingsFactory

from . import test_handoff_live
from .conftest import recv_until, visitor_socket
from .test_handoff_live import _cookie, inbox

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
agent_server = test_handoff_live.agent_server  # the second daphne process, shared with those tests


def _frame(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def test_two_unanswered_questions_in_a_row_put_the_visitor_in_the_inbox_live(world, chat, agent_server):
    # Knowledge-only and no documents: every answer is the bot's "I don't know".
    bot = BotFactory(tenant=world.tenant_a)
    HandoffSettingsFactory(tenant=world.tenant_a, bot=bot, on_unanswered=True, unanswered_count=2)
    alice = Client()
    alice.force_login(world.alice)

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with inbox(agent_server, _cookie(alice)) as agent:
            visitor = await visitor_socket(chat, bot, "visitor-trigger-1")
            await visitor.send(_frame("message", text="Do you sell left-handed scissors?", client_id="q1"))
            seen["first"] = await recv_until(visitor, "end")
            await visitor.send(_frame("message", text="And purple ones?", client_id="q2"))
            seen["second"] = await recv_until(visitor, "handoff")
            seen["inbox"] = (await recv_until(agent, "inbox_changed"))[-1]
            await visitor.close()
        return seen

    seen = asyncio.run(scenario())
    assert "handoff" not in [f["type"] for f in seen["first"]]
    waiting = seen["second"][-1]
    assert (waiting["status"], waiting["trigger"]) == ("waiting", "unanswered")
    assert "end" in [f["type"] for f in seen["second"]], "the second answer was given before the handoff"
    assert seen["inbox"]["conversation_id"] == waiting["conversation_id"]
    conversation = Conversation.objects.unscoped().get(pk=waiting["conversation_id"])
    assert conversation.handoff_status == HandoffStatus.WAITING
    models = Message.objects.unscoped().filter(conversation=conversation, role="assistant").values_list("model")
    assert [m for (m,) in models] == [NO_ANSWER_MODEL, NO_ANSWER_MODEL]


def test_a_thumbs_down_over_the_socket_puts_the_visitor_in_the_inbox(world, chat):
    bot = BotFactory(tenant=world.tenant_a)
    HandoffSettingsFactory(tenant=world.tenant_a, bot=bot, on_thumbs_down=True)

    async def scenario() -> list[dict[str, Any]]:
        visitor = await visitor_socket(chat, bot, "visitor-trigger-2")
        await visitor.send(_frame("message", text="Where is my parcel?", client_id="q1"))
        end = (await recv_until(visitor, "end"))[-1]
        await visitor.send(_frame("feedback", message_id=end["message_id"], value="down"))
        frames = await recv_until(visitor, "handoff")
        await visitor.close()
        return frames

    frames = asyncio.run(scenario())
    assert [f["type"] for f in frames] == ["feedback_ok", "handoff"]
    assert (frames[-1]["status"], frames[-1]["trigger"]) == ("waiting", "thumbs_down")
    conversation = Conversation.objects.unscoped().get(pk=frames[-1]["conversation_id"])
    assert conversation.handoff_status == HandoffStatus.WAITING
