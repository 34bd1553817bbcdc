"""Idempotent sends: a question resent with its key (widget frame, API Idempotency-Key) joins or
replays the first answer; no second message, no second model call. Against a real daphne."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from billing.services import subscription_comp
from conversations.models import Message
from tenants.context import tenant_context
from tenants.services import api_key_create
from tests.fakes.base import Behaviour

from .conftest import LONG_ANSWER, llm_bot, recv, recv_until, text_of, visitor_socket

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _questions(**filters) -> list[Message]:
    return list(Message.objects.unscoped().filter(role=Message.Role.USER, **filters))


def _api(chat, tenant) -> httpx.Client:
    subscription_comp(tenant=tenant, plan_slug="starter")  # a plan with API access
    with tenant_context(tenant):
        raw = api_key_create(tenant=tenant, name="retry", scopes=["chat"])[1]
    return httpx.Client(base_url=chat.base_url, timeout=60, headers={"Authorization": f"Bearer {raw}"})


def test_a_message_frame_resent_with_its_key_joins_the_answer_and_stores_one_question(world, chat):
    bot = llm_bot(world.tenant_a)
    chat.llm.default = Behaviour(text=LONG_ANSWER, tokens_per_second=40)
    frame = json.dumps({"type": "message", "text": "Hello?", "client_id": "c1", "idempotency_key": "key-0001-abcd"})
    calls = len(chat.llm.requests)

    async def scenario() -> tuple[list[dict], list[dict], list[dict]]:
        async with await visitor_socket(chat, bot, "visitor-retry-1") as first:
            await first.send(frame)
            started = await recv(first)
            # The same question again from a second socket while the answer streams (a retry
            # after a dropped connection): it joins the answer.
            async with await visitor_socket(chat, bot, "visitor-retry-1") as second:
                await second.send(frame)
                joined = await recv_until(second, "end")
            live = [started, *await recv_until(first, "end")]
        # And once more after it settled: replayed.
        async with await visitor_socket(chat, bot, "visitor-retry-1") as third:
            await third.send(frame)
            replayed = await recv_until(third, "end")
        return live, joined, replayed

    live, joined, replayed = asyncio.run(scenario())
    answer_id = live[0]["message_id"]
    for frames in (joined, replayed):
        assert frames[0]["type"] == "start" and frames[0]["message_id"] == answer_id
        assert frames[0]["client_id"] == "c1"
        assert frames[-1]["content"] == LONG_ANSWER
    assert text_of(joined[1:]) == LONG_ANSWER
    assert [f["seq"] for f in joined[1:]] == list(range(1, len(joined)))
    assert len(_questions(conversation__bot=bot)) == 1
    assert Message.objects.unscoped().filter(role=Message.Role.ASSISTANT, conversation__bot=bot).count() == 1
    assert len(chat.llm.requests) == calls + 1


def test_the_api_with_the_same_idempotency_key_twice_gives_one_message_and_the_same_answer(world, chat):
    bot = llm_bot(world.tenant_a)
    chat.llm.default = Behaviour(text="Our refund window is thirty days.")
    api = _api(chat, world.tenant_a)
    conversation_id = api.post("/api/v1/conversations", json={"bot_id": bot.pk}).json()["id"]
    headers = {"Idempotency-Key": "3f0b6c7e-2f4d-4c1e-9a43-7d1c2e5b8a90"}
    calls = len(chat.llm.requests)
    url = f"/api/v1/conversations/{conversation_id}/messages"
    first = api.post(url, json={"text": "Refunds?"}, headers=headers)
    again = api.post(url, json={"text": "Refunds?"}, headers=headers)
    assert first.status_code == again.status_code == 200, again.text
    assert again.json()["message"] == first.json()["message"]
    assert again.json()["user_message_id"] == first.json()["user_message_id"]
    assert first.json()["message"]["content"] == "Our refund window is thirty days."
    assert len(_questions(conversation_id=conversation_id)) == 1
    assert len(chat.llm.requests) == calls + 1
    streamed = api.post(url, json={"text": "Refunds?", "stream": True}, headers=headers)
    assert "event: end" in streamed.text and "thirty days" in streamed.text
    assert len(_questions(conversation_id=conversation_id)) == 1
    assert len(chat.llm.requests) == calls + 1


def test_two_tenants_sending_the_same_key_each_get_their_own_answer(world, chat):
    chat.llm.default = Behaviour(text="Hello from the model.")
    key = {"Idempotency-Key": "shared-key-123456"}
    calls = len(chat.llm.requests)
    for tenant in (world.tenant_a, world.tenant_b):
        api = _api(chat, tenant)
        conversation_id = api.post("/api/v1/conversations", json={"bot_id": llm_bot(tenant).pk}).json()["id"]
        response = api.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": "Hi"}, headers=key)
        assert response.status_code == 200, response.text
        assert [q.tenant_id for q in _questions(conversation_id=conversation_id)] == [tenant.pk]
    assert len(chat.llm.requests) == calls + 2


@pytest.mark.parametrize("key", ["short", "x" * 81, "has spaces in it", "key/with/slashes?"])
def test_a_malformed_or_oversized_key_is_refused_with_a_clear_error(world, chat, key):
    bot = llm_bot(world.tenant_a)
    api = _api(chat, world.tenant_a)
    calls = len(chat.llm.requests)
    conversation_id = api.post("/api/v1/conversations", json={"bot_id": bot.pk}).json()["id"]
    response = api.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": "Hi"},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "idempotency_key_invalid" and "8 to 80 characters" in error["message"]

    async def over_the_socket() -> dict:
        async with await visitor_socket(chat, bot, "visitor-badkey") as ws:
            await ws.send(json.dumps({"type": "message", "text": "Hi", "client_id": "c9", "idempotency_key": key}))
            return await recv(ws)

    frame = asyncio.run(over_the_socket())
    assert frame["type"] == "error" and frame["code"] == "idempotency_key_invalid" and frame["client_id"] == "c9"
    assert _questions(conversation__bot=bot) == []
    assert len(chat.llm.requests) == calls
