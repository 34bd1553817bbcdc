"""Fixtures for conversation tests: a live daphne wired to a fake OpenAI server, and WebSocket helpers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.bots.factories import BotFactory
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import fake_openai, fast_timeouts  # noqa: F401
from tests.fakes.openai_server import FakeOpenAI
from tests.support.servers import asgi_server

ORIGIN = "http://127.0.0.1:8001"
LONG_ANSWER = " ".join(f"word{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(60)) + "."


@dataclass
class ChatServer:
    base_url: str
    llm: FakeOpenAI
    process: Any

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://")


def _chat_server(server: str, workers: int = 1) -> Iterator[ChatServer]:
    with FakeOpenAI() as llm:
        llm.default = Behaviour(text=LONG_ANSWER, tokens_per_second=400)
        env = {
            "OPENAI_API_KEY": llm.api_key,
            "OPENAI_BASE_URL": llm.base_url,
            "KNOWLEDGE_PRELOAD_EMBEDDER": "false",
            "RATE_LIMIT_VISITOR": "20/60",
            "LLM_FIRST_TOKEN_TIMEOUT_MS": "5000",
        }
        with asgi_server(server, workers, **env) as (base_url, process):
            yield ChatServer(base_url, llm, process)


@pytest.fixture(scope="session")
def chat_server(django_db_setup: None) -> Iterator[ChatServer]:
    """One daphne for the conversation tests, its OpenAI provider pointed at a fake server here."""
    yield from _chat_server("daphne")


@pytest.fixture(scope="session")
def uvicorn_chat_server(django_db_setup: None) -> Iterator[ChatServer]:
    """The same under uvicorn (chatbot_saas/asgi_server.py), for tests/conversations/test_widget_socket_uvicorn_live.py."""
    yield from _chat_server("uvicorn")


@pytest.fixture(scope="session")
def workers_chat_server(django_db_setup: None) -> Iterator[ChatServer]:
    """Two daphne processes on one port (WEB_WORKERS=2), for test_widget_socket_workers_live.py."""
    yield from _chat_server("daphne", workers=2)


@pytest.fixture
def chat(chat_server: ChatServer) -> Iterator[ChatServer]:
    chat_server.llm.default = Behaviour(text=LONG_ANSWER, tokens_per_second=400)
    chat_server.llm.script.clear()
    yield chat_server
    chat_server.llm.script.clear()
    _wait_for_answers_to_settle()


def _wait_for_answers_to_settle(timeout: float = 60) -> None:
    """Answers outlive their sockets by design; let them finish before the test database is flushed,
    or the flush and the server's last writes deadlock."""
    from conversations.models import Message

    deadline = time.monotonic() + timeout
    while Message.objects.unscoped().filter(status=Message.Status.STREAMING).exists():
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    time.sleep(0.3)  # the settle's last writes (usage, trace) follow the status change


def llm_bot(tenant: Any, **kwargs: Any) -> Any:
    """A bot answering from the (fake) OpenAI model, without needing documents."""
    kwargs.setdefault("answer_policy", "general")
    kwargs.setdefault("model_chain", [{"provider": "openai", "model": "gpt-4o-mini", "params": {}}])
    return BotFactory(tenant=tenant, **kwargs)


async def session_token(base_url: str, bot_public_id: str, visitor_id: str, origin: str = ORIGIN) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.post(
            f"/widget/{bot_public_id}/session", json={"visitor_id": visitor_id}, headers={"Origin": origin}
        )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def ws_connect(server: ChatServer, bot_public_id: str, token: str | None, origin: str | None = ORIGIN) -> Any:
    query = f"?token={token}" if token is not None else ""
    return connect(f"{server.ws_url}/ws/widget/{bot_public_id}/{query}", origin=origin, open_timeout=10)


async def visitor_socket(server: ChatServer, bot: Any, visitor_id: str) -> Any:
    token = await session_token(server.base_url, bot.public_id, visitor_id)
    return await ws_connect(server, bot.public_id, token)


async def recv(ws: Any, timeout: float = 15) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws: Any, kind: str, timeout: float = 20) -> list[dict[str, Any]]:
    """Frames up to and including the first of type `kind`."""
    frames: list[dict[str, Any]] = []
    while True:
        frame = await recv(ws, timeout)
        frames.append(frame)
        if frame["type"] == kind:
            return frames


async def closed_with(ws: Any, timeout: float = 10) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes; return the close code and the frames it sent first."""
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    except ConnectionClosed as exc:
        return (exc.rcvd.code if exc.rcvd else None), frames


def text_of(frames: list[dict[str, Any]]) -> str:
    shown = ""
    for frame in frames:
        if frame["type"] == "reset":
            shown = ""
        elif frame["type"] == "delta":
            shown += frame["text"]
    return shown
