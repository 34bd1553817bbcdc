"""The visitor WebSocket with WEB_WORKERS=2: two daphne processes on one port (chatbot_saas/asgi_server.py).
The kernel spreads sockets over the processes, so a resume or a stop often reaches a process other
than the one producing the answer: they must work through Redis exactly as within one process."""

from __future__ import annotations

import asyncio
import json

import psutil
import pytest

from tests.fakes.base import Behaviour

from . import test_widget_socket_live as daphne_cases
from .conftest import LONG_ANSWER, ChatServer, llm_bot, recv, recv_until, text_of, visitor_socket

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def chat_server(workers_chat_server: ChatServer) -> ChatServer:
    return workers_chat_server


def test_the_web_process_runs_two_servers_on_its_port(chat_server):
    children = psutil.Process(chat_server.process.process.pid).children()
    assert len(children) == 2
    assert all("--worker-fd" in child.cmdline() for child in children)


test_a_visitor_gets_a_streamed_answer_in_numbered_frames = (
    daphne_cases.test_a_visitor_gets_a_streamed_answer_in_numbered_frames
)
test_disconnecting_at_a_random_delta_20_times_persists_20_complete_answers = (
    daphne_cases.test_disconnecting_at_a_random_delta_20_times_persists_20_complete_answers
)
test_resuming_gives_the_missed_frames_and_the_live_tail_without_gaps_or_duplicates = (
    daphne_cases.test_resuming_gives_the_missed_frames_and_the_live_tail_without_gaps_or_duplicates
)


def test_a_stop_from_any_socket_of_the_visitor_ends_the_answer_as_partial(world, chat):
    bot = llm_bot(world.tenant_a)
    chat.llm.default = Behaviour(text=LONG_ANSWER, tokens_per_second=20)

    async def one(i: int) -> list[dict]:
        visitor = f"visitor-stop-anywhere-{i:04d}"
        # Both sockets of the visitor (on either process) are open before the question, so the
        # stop races only the rest of the answer (3 s), not a token fetch and a handshake.
        async with await visitor_socket(chat, bot, visitor) as ws, await visitor_socket(chat, bot, visitor) as other:
            await ws.send(json.dumps({"type": "message", "text": "go"}))
            start = await recv(ws)
            first = await recv(ws)
            await other.send(json.dumps({"type": "stop", "message_id": start["message_id"]}))
            return [first, *await recv_until(ws, "end")]

    async def scenario() -> list[list[dict]]:
        return await asyncio.gather(*(one(i) for i in range(6)))

    answers = asyncio.run(scenario())
    for frames in answers:
        end = frames[-1]
        assert end["status"] == "partial" and end["content"] == text_of(frames) != LONG_ANSWER
    messages = daphne_cases._wait_settled([frames[-1]["message_id"] for frames in answers])
    assert [m.status for m in messages] == ["partial"] * 6
