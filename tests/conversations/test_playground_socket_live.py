"""The playground socket end to end, against a real daphne: a signed-in member chats with a bot
of their workspace, with its published prompt or another version (conversations/playground.py)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from websockets.asyncio.client import connect

from billing.models import Plan, Subscription, UsageCounter
from bots.models import PromptVersion
from conversations.models import Conversation, Message, Trace
from tests.bots.factories import PromptVersionFactory
from tests.fakes.base import Behaviour, Received

from .conftest import LONG_ANSWER, ChatServer, closed_with, llm_bot, recv, recv_until, text_of

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DRAFT = "You are the DRAFT persona. Answer in one sentence."


def _cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def playground(chat: ChatServer, cookie: str | None, *, slug: str = "acme", origin: str | None = None) -> Any:
    """A playground socket with a session `cookie` (None: anonymous), opened from `origin`
    (default: the app's own pages)."""
    headers = {"Cookie": cookie} if cookie is not None else {}
    return connect(
        f"{chat.ws_url}/ws/playground/{slug}/",
        origin=origin or chat.base_url,
        additional_headers=headers,
        open_timeout=10,
    )


def _settled(message_id: int, timeout: float = 30) -> Message:
    deadline = time.monotonic() + timeout
    while True:
        message = Message.objects.unscoped().get(pk=message_id)
        if message.status != Message.Status.STREAMING or time.monotonic() > deadline:
            return message
        time.sleep(0.1)


def _ask(bot: Any, text: str, **extra: Any) -> str:
    return json.dumps({"type": "message", "text": text, "bot_id": bot.pk, "prompt_version": None, **extra})


def test_a_member_streams_an_answer_marked_as_playground_traffic(world, chat):
    bot = llm_bot(world.tenant_a)

    cookie = _cookie(world.bob)

    async def scenario() -> list[dict]:
        async with playground(chat, cookie) as ws:
            await ws.send(_ask(bot, "Hello from the playground", client_id=7))
            return await recv_until(ws, "end")

    frames = asyncio.run(scenario())
    start, end = frames[0], frames[-1]
    assert start["type"] == "start" and start["client_id"] == 7
    assert end["status"] == "complete" and end["content"] == LONG_ANSWER == text_of(frames)
    assert len([f for f in frames if f["type"] == "delta"]) > 1, "streamed, not sent in one piece"
    conversation = Conversation.objects.unscoped().get(pk=start["conversation_id"])
    assert conversation.channel == Conversation.Channel.PLAYGROUND
    assert conversation.visitor_id == f"member:{world.bob.pk}"
    trace = Trace.objects.unscoped().get(message_id=start["message_id"])
    assert trace.prompt_version == 1 and trace.attempts[0]["outcome"] == "ok"


def test_a_draft_prompt_version_answers_when_chosen_and_the_published_one_stays_live(world, chat):
    bot = llm_bot(world.tenant_a)
    PromptVersionFactory(tenant=world.tenant_a, bot=bot, number=2, text=DRAFT)

    cookie = _cookie(world.alice)

    async def scenario() -> tuple[dict, dict]:
        async with playground(chat, cookie) as ws:
            await ws.send(_ask(bot, "Who are you?", prompt_version=2))
            draft = (await recv_until(ws, "end"))[0]
            await ws.send(_ask(bot, "And now?", prompt_version=None))
            published = (await recv_until(ws, "end"))[0]
            return draft, published

    draft, published = asyncio.run(scenario())
    systems = [r.body["messages"][0]["content"] for r in chat.llm.requests[-2:]]
    assert DRAFT in systems[0] and DRAFT not in systems[1]
    assert Trace.objects.unscoped().get(message_id=draft["message_id"]).prompt_version == 2
    assert Trace.objects.unscoped().get(message_id=published["message_id"]).prompt_version == 1
    published_versions = PromptVersion.objects.unscoped().filter(bot=bot, is_published=True)
    assert list(published_versions.values_list("number", flat=True)) == [1]


def test_another_workspaces_bot_or_an_unknown_version_is_refused_and_nothing_is_stored(world, chat):
    mine = llm_bot(world.tenant_a)
    theirs = llm_bot(world.tenant_b)

    cookie = _cookie(world.bob)

    async def scenario() -> list[dict]:
        async with playground(chat, cookie) as ws:
            replies = []
            for frame in (_ask(theirs, "Hi"), _ask(mine, "Hi", prompt_version=99), _ask(mine, "Hi", bot_id="1")):
                await ws.send(frame)
                replies.append(await recv(ws))
            return replies

    replies = asyncio.run(scenario())
    assert [r["code"] for r in replies] == ["bot_not_found"] * 3
    assert "No such bot" in replies[0]["message"]
    assert not Message.objects.unscoped().exists()


@pytest.mark.parametrize(
    ("who", "slug", "origin", "expected"),
    [
        ("anonymous", "acme", None, (4403, "not_signed_in")),
        ("bob", "acme", "https://evil.example", (4403, "origin_not_allowed")),
        ("bob", "bravo", None, (4404, "workspace_not_found")),
    ],
    ids=["anonymous", "another site", "not a member"],
)
def test_the_socket_is_refused_with_a_code_and_a_sentence(world, chat, who, slug, origin, expected):
    cookie = None if who == "anonymous" else _cookie(getattr(world, who))

    async def scenario() -> tuple[int | None, list[dict]]:
        async with playground(chat, cookie, slug=slug, origin=origin) as ws:
            return await closed_with(ws)

    code, frames = asyncio.run(scenario())
    assert (code, frames[0]["code"]) == expected
    assert frames[0]["message"]


def test_malformed_frames_get_bad_frame_and_an_oversized_one_closes_the_socket(world, chat):
    bot = llm_bot(world.tenant_a)

    cookie = _cookie(world.bob)

    async def scenario() -> tuple[list[dict], int | None]:
        async with playground(chat, cookie) as ws:
            replies = []
            for bad in (b"\x00\x01binary", "{not json", "[1,2]", '{"type": "resume"}', '{"type": "feedback"}'):
                await ws.send(bad)
                replies.append(await recv(ws))
            await ws.send(_ask(bot, "   "))
            replies.append(await recv(ws))
            await ws.send(json.dumps({"type": "stop", "message_id": 123456}))
            replies.append(await recv(ws))
            await ws.send(_ask(bot, "a" * 20_000))
            code, _ = await closed_with(ws)
            return replies, code

    replies, code = asyncio.run(scenario())
    assert [r["code"] for r in replies] == ["bad_frame"] * 5 + ["message_empty", "not_found"]
    assert code == 1009


def test_the_question_is_stored_before_the_model_is_called_and_a_stopped_answer_is_kept_partial(world, chat):
    bot = llm_bot(world.tenant_a)
    chat.llm.default = Behaviour(text=LONG_ANSWER, tokens_per_second=20)
    seen: list[list[str]] = []

    def on_request(request: Received) -> None:
        seen.append(list(Message.objects.unscoped().filter(role="user").values_list("content", flat=True)))

    chat.llm.on_request = on_request

    cookie = _cookie(world.bob)

    async def scenario() -> tuple[dict, list[dict]]:
        async with playground(chat, cookie) as ws:
            await ws.send(_ask(bot, "Tell me a long story"))
            start = await recv(ws)
            await recv(ws)  # the first delta
            await ws.send(json.dumps({"type": "stop", "message_id": start["message_id"]}))
            return start, await recv_until(ws, "end")

    try:
        start, frames = asyncio.run(scenario())
    finally:
        chat.llm.on_request = None
    assert seen and seen[0] == ["Tell me a long story"]
    assert frames[-1]["status"] == "partial"
    message = _settled(start["message_id"])
    assert message.status == Message.Status.PARTIAL and message.content and message.content != LONG_ANSWER
    assert Trace.objects.unscoped().filter(message=message).exists()


def test_new_conversation_starts_without_memory(world, chat):
    bot = llm_bot(world.tenant_a)

    cookie = _cookie(world.bob)

    async def scenario() -> list[int]:
        async with playground(chat, cookie) as ws:
            ids = []
            for text in ("My name is Bob.", "What is my name?"):
                await ws.send(_ask(bot, text))
                ids.append((await recv_until(ws, "end"))[0]["conversation_id"])
            await ws.send(json.dumps({"type": "new_conversation"}))
            assert (await recv(ws)) == {"type": "conversation", "conversation_id": None}
            await ws.send(_ask(bot, "What is my name?"))
            ids.append((await recv_until(ws, "end"))[0]["conversation_id"])
            return ids

    first, second, third = asyncio.run(scenario())
    assert first == second != third
    # The fresh conversation's request carries no earlier turn.
    assert [m["role"] for m in chat.llm.requests[-1].body["messages"]] == ["system", "user"]


def test_playground_turns_count_against_the_plan_like_any_turn(world, chat):
    bot = llm_bot(world.tenant_a)
    tiny = Plan.objects.create(name="Tiny", slug="tiny", max_messages_per_month=1)
    Subscription.objects.unscoped().filter(tenant=world.tenant_a).update(plan=tiny)
    cookie = _cookie(world.bob)

    async def scenario() -> tuple[list[dict], list[dict]]:
        async with playground(chat, cookie) as ws:
            await ws.send(_ask(bot, "First question"))
            first = await recv_until(ws, "end")
            await ws.send(_ask(bot, "Second question"))
            return first, await recv_until(ws, "end")

    first, second = asyncio.run(scenario())
    assert first[-1]["status"] == "complete"
    usage = UsageCounter.objects.unscoped().get(tenant=world.tenant_a)
    assert usage.messages == 1 and usage.tokens_out == first[-1]["usage"]["tokens_out"] > 0
    error = next(f for f in second if f["type"] == "error")
    assert error["code"] == "quota_exceeded" and "Upgrade" in error["message"]
