"""A visitor who presses stop keeps what they saw: the answer is settled `partial` and recorded."""

from __future__ import annotations

import asyncio

from asgiref.sync import async_to_sync

from billing.models import UsageCounter
from conversations.models import Message
from conversations.pipeline.events import Delta, Start
from conversations.pipeline.service import answer_stream
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import chain

SLOW = Behaviour(text="word " * 200, tokens_per_second=50)


def _setup(conversation, fake_openai):
    bot = conversation.bot
    bot.model_chain = chain("openai:gpt-4o-mini")
    bot.save()
    fake_openai.then(SLOW)
    return bot


def _assert_partial(message_id: int, shown: str, tenant) -> None:
    message = Message.objects.unscoped().select_related("trace").get(pk=message_id)
    assert message.status == "partial"
    assert message.content == shown and shown.startswith("word word")
    assert message.error_code == "stopped" and message.tokens_out > 0
    assert message.trace.attempts[0]["provider"] == "openai"
    assert UsageCounter.objects.unscoped().get(tenant=tenant).messages == 1


def test_closing_the_stream_early_settles_the_message_as_partial(conversation_a, fake_openai):
    bot = _setup(conversation_a, fake_openai)

    async def run() -> tuple[int, str]:
        stream = answer_stream(bot=bot, conversation=conversation_a, user_message="Tell me everything")
        shown, message_id = "", 0
        async for event in stream:
            if isinstance(event, Start):
                message_id = event.assistant_message_id
            if isinstance(event, Delta):
                shown += event.text
                if shown.count("word") >= 3:
                    break
        await stream.aclose()  # what a consumer does when the visitor presses stop
        return message_id, shown

    message_id, shown = async_to_sync(run)()
    _assert_partial(message_id, shown, conversation_a.tenant)


def test_cancelling_the_task_that_runs_the_stream_settles_the_message_as_partial(conversation_a, fake_openai):
    bot = _setup(conversation_a, fake_openai)
    seen: dict = {"shown": "", "id": 0}

    async def consume() -> None:
        async for event in answer_stream(bot=bot, conversation=conversation_a, user_message="Tell me everything"):
            if isinstance(event, Start):
                seen["id"] = event.assistant_message_id
            if isinstance(event, Delta):
                seen["shown"] += event.text
                if seen["shown"].count("word") >= 3:
                    seen["enough"].set()

    async def run() -> None:
        seen["enough"] = asyncio.Event()
        task = asyncio.create_task(consume())
        await seen["enough"].wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async_to_sync(run)()
    _assert_partial(seen["id"], seen["shown"], conversation_a.tenant)


def test_stopping_closes_the_upstream_request_so_the_provider_stops_generating(conversation_a, fake_openai):
    bot = _setup(conversation_a, fake_openai)

    async def run() -> None:
        stream = answer_stream(bot=bot, conversation=conversation_a, user_message="Tell me everything")
        async for event in stream:
            if isinstance(event, Delta):
                break
        await stream.aclose()

    async_to_sync(run)()
    deadline = 200
    while fake_openai.disconnects == 0 and deadline:
        async_to_sync(asyncio.sleep)(0.01)
        deadline -= 1
    assert fake_openai.disconnects == 1
