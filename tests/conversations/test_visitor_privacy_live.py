"""Visitor erasure after a real widget session on a live daphne: what the socket stored and
buffered (rows, resume streams, rate-limit buckets) is gone afterwards, in Postgres and Redis."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from django.core.management import call_command

from conversations.models import Conversation, Message
from conversations.streams import stream_key
from tests.support.residue import redis_keys, rows_mentioning

from .conftest import llm_bot, recv_until, visitor_socket

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

VISITOR = "visitor-live-erase-7q"
CANARY = "Pangolinmint"


def _settled(visitor: str, timeout: float = 30) -> list[Message]:
    deadline = time.monotonic() + timeout
    while True:
        messages = list(Message.objects.unscoped().filter(conversation__visitor_id=visitor))
        if (messages and all(m.status != Message.Status.STREAMING for m in messages)) or time.monotonic() > deadline:
            return messages
        time.sleep(0.1)


def test_a_visitor_who_chatted_over_the_widget_socket_is_erased_without_residue(world, chat):
    bot = llm_bot(world.tenant_a)

    async def scenario() -> None:
        async with await visitor_socket(chat, bot, VISITOR) as ws:
            for n in (1, 2):
                await ws.send(json.dumps({"type": "message", "text": f"{CANARY} question {n}", "client_id": f"c{n}"}))
                await recv_until(ws, "end")

    asyncio.run(scenario())
    messages = _settled(VISITOR)
    assert len(messages) == 4
    conversation_ids = {m.conversation_id for m in messages}
    before = redis_keys()
    assert any(VISITOR in k for k in before)
    assert {stream_key(m.pk) for m in messages if m.role == "assistant"} <= set(before)

    call_command("visitor_erase", tenant="acme", visitor=VISITOR, yes=True)

    assert not Conversation.objects.unscoped().filter(pk__in=conversation_ids).exists()
    assert rows_mentioning(CANARY) == [] and rows_mentioning(VISITOR) == []
    after = redis_keys()
    assert [k for k in after if VISITOR in k] == []
    assert not {stream_key(m.pk) for m in messages} & set(after)
    assert [k for k in after if any(k.endswith(f"handoff-conv-{pk}") for pk in conversation_ids)] == []
