"""The visitor WebSocket protocol end to end, against a real daphne (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from unittest import mock

import pytest

from conversations.models import Message
from conversations.tokens import SessionClaims, session_token_issue
from tests.bots.factories import BotFactory
from tests.fakes.base import Behaviour

from .conftest import (
    LONG_ANSWER,
    ORIGIN,
    closed_with,
    llm_bot,
    recv,
    recv_until,
    session_token,
    text_of,
    visitor_socket,
    ws_connect,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _wait_settled(message_ids: list[int], timeout: float = 30) -> list[Message]:
    deadline = time.monotonic() + timeout
    while True:
        messages = list(Message.objects.unscoped().filter(pk__in=message_ids).order_by("pk"))
        if all(m.status != Message.Status.STREAMING for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.1)


def test_a_visitor_gets_a_streamed_answer_in_numbered_frames(world, chat):
    bot = llm_bot(world.tenant_a)

    async def scenario() -> list[dict]:
        async with await visitor_socket(chat, bot, "visitor-live-0001") as ws:
            await ws.send(json.dumps({"type": "message", "text": "Hello?", "client_id": "c1"}))
            return await recv_until(ws, "end")

    frames = asyncio.run(scenario())
    start, numbered = frames[0], frames[1:]
    assert start["type"] == "start" and start["client_id"] == "c1"
    assert [f["seq"] for f in numbered] == list(range(1, len(numbered) + 1))
    assert {f["message_id"] for f in numbered} == {start["message_id"]}
    end = numbered[-1]
    assert end["status"] == "complete" and end["content"] == LONG_ANSWER == text_of(numbered)
    assert end["usage"]["tokens_out"] > 0
    # Deltas are coalesced: far fewer frames than the 61 tokens the provider sent.
    assert len([f for f in numbered if f["type"] == "delta"]) < 61
    message = Message.objects.unscoped().get(pk=start["message_id"])
    assert message.status == "complete" and message.content == LONG_ANSWER
    user_message = Message.objects.unscoped().get(pk=start["user_message_id"])
    assert user_message.content == "Hello?" and user_message.conversation.visitor_id == "visitor-live-0001"


def test_handshakes_without_a_valid_token_origin_or_bot_are_refused(world, chat):
    bot = llm_bot(world.tenant_a)
    other_tenant_bot = llm_bot(world.tenant_b)

    def forged() -> str:
        claims = SessionClaims(bot.public_id, "visitor-live-0002", ORIGIN)
        return session_token_issue(claims=claims)[:-4] + "AAAA"

    def expired() -> str:
        with mock.patch("time.time", return_value=time.time() - 3600):
            return session_token_issue(claims=SessionClaims(bot.public_id, "visitor-live-0002", ORIGIN))

    async def attempt(bot_public_id: str, token: str | None, origin: str | None = ORIGIN) -> tuple:
        async with ws_connect(chat, bot_public_id, token, origin) as ws:
            return await closed_with(ws)

    async def scenario() -> dict[str, tuple]:
        good = await session_token(chat.base_url, bot.public_id, "visitor-live-0002")
        return {
            "missing": await attempt(bot.public_id, None),
            "forged": await attempt(bot.public_id, forged()),
            "expired": await attempt(bot.public_id, expired()),
            "wrong origin": await attempt(bot.public_id, good, "https://evil.example"),
            "no origin": await attempt(bot.public_id, good, None),
            "unknown bot": await attempt("bot_doesnotexist", good),
            "another tenant's bot": await attempt(other_tenant_bot.public_id, good),
        }

    results = asyncio.run(scenario())
    codes = {name: (close, frames[0]["code"]) for name, (close, frames) in results.items()}
    assert codes == {
        "missing": (4403, "token_invalid"),
        "forged": (4403, "token_invalid"),
        "expired": (4403, "token_expired"),
        "wrong origin": (4403, "origin_not_allowed"),
        "no origin": (4403, "origin_not_allowed"),
        "unknown bot": (4404, "bot_not_found"),
        "another tenant's bot": (4403, "token_invalid"),
    }


def test_binary_and_malformed_frames_get_bad_frame_and_the_socket_stays_usable(world, chat):
    bot = llm_bot(world.tenant_a)

    async def scenario() -> list[dict]:
        async with await visitor_socket(chat, bot, "visitor-live-0003") as ws:
            replies = []
            for bad in (b"\x00\x01binary", "{not json", "[1,2]", '{"type": 5}', '{"type": "explode"}', '"text"'):
                await ws.send(bad)
                replies.append(await recv(ws))
            await ws.send(json.dumps({"type": "message", "text": "   "}))
            replies.append(await recv(ws))
            await ws.send(json.dumps({"type": "message", "text": "x" * 5000}))
            replies.append(await recv(ws))
            await ws.send(json.dumps({"type": "message", "text": "still there?"}))
            replies.append((await recv_until(ws, "end"))[-1])
            return replies

    replies = asyncio.run(scenario())
    assert [r.get("code") for r in replies[:6]] == ["bad_frame"] * 6
    assert replies[6]["code"] == "message_empty" and replies[7]["code"] == "message_too_long"
    assert replies[8]["type"] == "end" and replies[8]["status"] == "complete"


def test_an_oversized_frame_closes_the_socket_with_1009(world, chat):
    bot = llm_bot(world.tenant_a)

    async def scenario() -> int | None:
        async with await visitor_socket(chat, bot, "visitor-live-0004") as ws:
            await ws.send(json.dumps({"type": "message", "text": "a" * 20_000}))
            code, _ = await closed_with(ws)
            return code

    assert asyncio.run(scenario()) == 1009


def test_a_flood_of_messages_is_refused_with_rate_limited_and_a_retry_after(world, chat):
    bot = llm_bot(world.tenant_a)

    async def scenario() -> list[dict]:
        async with await visitor_socket(chat, bot, "visitor-live-0005") as ws:
            for i in range(25):
                await ws.send(json.dumps({"type": "message", "text": f"question {i}"}))
            frames = []
            while not any(f.get("code") == "rate_limited" for f in frames):
                frames.append(await recv(ws))
            return frames

    frames = asyncio.run(scenario())
    refused = [f for f in frames if f.get("code") == "rate_limited"]
    assert refused and refused[0]["retry_after"] > 0
    assert any(f.get("code") == "answer_in_progress" for f in frames)


def test_disconnecting_at_a_random_delta_20_times_persists_20_complete_answers(world, chat):
    bot = llm_bot(world.tenant_a)
    # 40 tokens/s (1.5 s per answer): deltas are coalesced per flush, and at 150 tokens/s a loaded
    # machine delivered a whole answer in fewer frames than the cut point, so `end` came first.
    chat.llm.default = Behaviour(text=LONG_ANSWER, tokens_per_second=40)
    rng = random.Random(5)

    async def one(i: int) -> int:
        async with await visitor_socket(chat, bot, f"visitor-drop-{i:04d}") as ws:
            await ws.send(json.dumps({"type": "message", "text": f"question {i}"}))
            start = await recv(ws)
            for _ in range(rng.randint(1, 4)):
                frame = await recv(ws)
                assert frame["type"] == "delta"
        # Leaving the block closed the socket mid-answer.
        return start["message_id"]

    async def scenario() -> list[int]:
        return await asyncio.gather(*(one(i) for i in range(20)))

    message_ids = asyncio.run(scenario())
    messages = _wait_settled(message_ids)
    assert [m.status for m in messages] == ["complete"] * 20
    assert all(m.content == LONG_ANSWER for m in messages)


def test_resuming_gives_the_missed_frames_and_the_live_tail_without_gaps_or_duplicates(world, chat):
    bot = llm_bot(world.tenant_a)
    chat.llm.default = Behaviour(text=LONG_ANSWER, tokens_per_second=100)

    async def one(cut_after: int, visitor: str) -> tuple[list[dict], list[dict]]:
        async with await visitor_socket(chat, bot, visitor) as ws:
            await ws.send(json.dumps({"type": "message", "text": "tell me everything"}))
            start = await recv(ws)
            seen = [await recv(ws) for _ in range(cut_after)]
        async with await visitor_socket(chat, bot, visitor) as ws:
            await ws.send(
                json.dumps({"type": "resume", "message_id": start["message_id"], "last_seq": seen[-1]["seq"]})
            )
            rest = await recv_until(ws, "end")
        return seen, rest

    async def scenario() -> list[tuple]:
        return await asyncio.gather(*(one(cut, f"visitor-resume-{cut:04d}") for cut in (1, 2, 3)))

    for seen, rest in asyncio.run(scenario()):
        seqs = [f["seq"] for f in seen + rest]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        assert rest[-1]["status"] == "complete"
        assert text_of(seen + rest) == LONG_ANSWER


def test_resuming_a_finished_answer_replays_its_tail(world, chat):
    bot = llm_bot(world.tenant_a)

    async def scenario() -> tuple[list[dict], list[dict]]:
        async with await visitor_socket(chat, bot, "visitor-live-0006") as ws:
            await ws.send(json.dumps({"type": "message", "text": "hi"}))
            frames = await recv_until(ws, "end")
            await ws.send(json.dumps({"type": "resume", "message_id": frames[0]["message_id"], "last_seq": 2}))
            replay = await recv_until(ws, "end")
        return frames, replay

    frames, replay = asyncio.run(scenario())
    assert [f["seq"] for f in replay] == [f["seq"] for f in frames[3:]]


async def _nothing_within(ws, seconds: float) -> list[dict]:
    """Frames that arrive within `seconds` (the test expects none)."""
    frames = []
    try:
        while True:
            frames.append(await recv(ws, timeout=seconds))
    except TimeoutError:
        return frames


def test_a_repeated_resume_on_one_socket_replays_nothing_twice(world, chat):
    bot = llm_bot(world.tenant_a)
    chat.llm.default = Behaviour(text=LONG_ANSWER, tokens_per_second=100)

    async def scenario() -> tuple[list[dict], list[dict], list[dict]]:
        async with await visitor_socket(chat, bot, "visitor-live-0016") as ws:
            await ws.send(json.dumps({"type": "message", "text": "tell me everything"}))
            start = await recv(ws)
            seen = [await recv(ws) for _ in range(2)]
        resume = {"type": "resume", "message_id": start["message_id"], "last_seq": seen[-1]["seq"]}
        async with await visitor_socket(chat, bot, "visitor-live-0016") as ws:
            await ws.send(json.dumps(resume))
            await ws.send(json.dumps(resume))  # the widget retrying, or a second tab's code path
            rest = await recv_until(ws, "end")
            await ws.send(json.dumps({**resume, "last_seq": 0}))  # and once more after the end
            # Longer than the follower's quiet period, after which a settled answer would be re-sent.
            late = await _nothing_within(ws, 7)
        return seen, rest, late

    seen, rest, late = asyncio.run(scenario())
    seqs = [f["seq"] for f in seen + rest]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    assert text_of(seen + rest) == LONG_ANSWER and rest[-1]["status"] == "complete"
    assert late == []


def test_another_visitor_cannot_resume_stop_or_rate_someone_elses_answer(world, chat):
    bot = llm_bot(world.tenant_a)
    other_bot = llm_bot(world.tenant_b)
    chat.llm.default = Behaviour(text=LONG_ANSWER, tokens_per_second=100)

    async def scenario() -> tuple[list[dict], list[dict], list[dict]]:
        async with await visitor_socket(chat, bot, "visitor-owner-0001") as owner:
            await owner.send(json.dumps({"type": "message", "text": "mine"}))
            start = await recv(owner)
            mid = start["message_id"]
            hostile = [
                {"type": "resume", "message_id": mid, "last_seq": 0},
                {"type": "stop", "message_id": mid},
                {"type": "feedback", "message_id": mid, "value": "down"},
                {"type": "resume", "message_id": "1 OR 1=1", "last_seq": 0},
                {"type": "stop", "message_id": start["user_message_id"]},
            ]
            async with await visitor_socket(chat, bot, "visitor-thief-0001") as thief:
                replies = []
                for frame in hostile:
                    await thief.send(json.dumps(frame))
                    replies.append(await recv(thief))
            async with await visitor_socket(chat, other_bot, "visitor-owner-0001") as cross_tenant:
                await cross_tenant.send(json.dumps({"type": "stop", "message_id": mid}))
                cross = [await recv(cross_tenant)]
            rest = await recv_until(owner, "end")
        return replies, cross, rest

    replies, cross, rest = asyncio.run(scenario())
    assert [r["code"] for r in replies] == ["not_found"] * 5
    assert cross[0]["code"] == "not_found"
    assert rest[-1]["status"] == "complete"
    message = Message.objects.unscoped().get(pk=rest[-1]["message_id"])
    assert message.status == "complete" and message.feedback == ""


def test_stop_ends_the_answer_as_partial_and_keeps_what_was_shown(world, chat):
    bot = llm_bot(world.tenant_a)
    chat.llm.default = Behaviour(text=LONG_ANSWER, tokens_per_second=40)

    async def scenario() -> list[dict]:
        async with await visitor_socket(chat, bot, "visitor-live-0007") as ws:
            await ws.send(json.dumps({"type": "message", "text": "go"}))
            start = await recv(ws)
            first = await recv(ws)
            await ws.send(json.dumps({"type": "stop", "message_id": start["message_id"]}))
            return [start, first, *await recv_until(ws, "end")]

    frames = asyncio.run(scenario())
    end = frames[-1]
    assert end["status"] == "partial" and end["content"] == text_of(frames[1:]) != LONG_ANSWER
    message = _wait_settled([end["message_id"]])[0]
    assert message.status == "partial" and LONG_ANSWER.startswith(message.content.strip())


def test_feedback_and_a_new_conversation_over_the_socket(world, chat):
    bot = llm_bot(world.tenant_a)

    async def scenario() -> tuple[list[dict], dict, dict, dict]:
        async with await visitor_socket(chat, bot, "visitor-live-0008") as ws:
            await ws.send(json.dumps({"type": "message", "text": "hi"}))
            frames = await recv_until(ws, "end")
            mid = frames[0]["message_id"]
            await ws.send(json.dumps({"type": "feedback", "message_id": mid, "value": "up", "comment": "great"}))
            ok = await recv(ws)
            await ws.send(json.dumps({"type": "feedback", "message_id": mid, "value": "sideways"}))
            bad = await recv(ws)
            await ws.send(json.dumps({"type": "new_conversation"}))
            new = await recv(ws)
        return frames, ok, bad, new

    frames, ok, bad, new = asyncio.run(scenario())
    assert ok == {"type": "feedback_ok", "message_id": frames[0]["message_id"]}
    assert bad["code"] == "feedback_invalid"
    message = Message.objects.unscoped().get(pk=frames[0]["message_id"])
    assert (message.feedback, message.feedback_comment) == ("up", "great")
    assert new["type"] == "conversation" and new["conversation_id"] != frames[0]["conversation_id"]


def test_a_bot_with_no_allowed_origins_refuses_every_page(world, chat):
    bot = BotFactory(tenant=world.tenant_a, allowed_origins=[])

    async def scenario() -> tuple:
        async with ws_connect(chat, bot.public_id, "x") as ws:
            return await closed_with(ws)

    code, frames = asyncio.run(scenario())
    assert code == 4403 and frames[0]["code"] == "origin_not_allowed"


def test_an_unreachable_redis_gets_busy_and_the_socket_stays_usable(world, chat):
    """Rate limits live in Redis: without it a message is refused as `busy` (nothing stored), never
    with a crashed socket, and the visitor can keep using the socket."""
    from tests.support.servers import asgi_server, free_port

    from .conftest import ChatServer

    bot = llm_bot(world.tenant_a)
    token = session_token_issue(claims=SessionClaims(bot.public_id, "visitor-live-busy", ORIGIN))
    closed_port = free_port()  # nothing listens there
    env = {"REDIS_URL": f"redis://127.0.0.1:{closed_port}/0", "KNOWLEDGE_PRELOAD_EMBEDDER": "false"}
    with asgi_server("daphne", **env) as (base_url, process):
        server = ChatServer(base_url, chat.llm, process)

        async def scenario() -> list[dict]:
            async with ws_connect(server, bot.public_id, token) as ws:
                replies = []
                for _ in range(2):
                    await ws.send(json.dumps({"type": "message", "text": "Hello?", "client_id": "c1"}))
                    replies.append(await recv(ws))
                await ws.send("{not json")
                replies.append(await recv(ws))
                return replies

        replies = asyncio.run(scenario())
    assert [r["code"] for r in replies] == ["busy", "busy", "bad_frame"]
    assert replies[0]["retry_after"] == 2.0 and replies[0]["client_id"] == "c1"
    assert not Message.objects.unscoped().filter(conversation__bot=bot).exists()
