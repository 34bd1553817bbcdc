"""Fixtures for pipeline tests: the fake provider servers, a bot in tenant A, and a helper that
runs answer_stream to the end from a sync test (so the test's database transaction is shared)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from asgiref.sync import async_to_sync

from conversations.pipeline.events import AnswerEvent, Citations, Delta, Done, Error, Reset, Start
from conversations.pipeline.service import answer_stream
from tests.conversations.factories import ConversationFactory

from .anthropic_server import FakeAnthropic
from .openai_server import FakeOpenAI


@dataclass
class Turn:
    events: list[AnswerEvent] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    @property
    def text(self) -> str:
        """What the visitor ends up seeing: deltas, with everything before the last reset discarded."""
        shown = ""
        for event in self.events:
            if isinstance(event, Reset):
                shown = ""
            elif isinstance(event, Delta):
                shown += event.text
        return shown

    @property
    def start(self) -> Start:
        return next(e for e in self.events if isinstance(e, Start))

    @property
    def last(self) -> AnswerEvent:
        return self.events[-1]

    @property
    def done(self) -> Done:
        assert isinstance(self.last, Done), self.events
        return self.last

    @property
    def error(self) -> Error:
        assert isinstance(self.last, Error), self.events
        return self.last

    @property
    def citations(self) -> list[dict]:
        return next((e.items for e in self.events if isinstance(e, Citations)), [])


def ask(bot, conversation, text) -> Turn:
    async def run() -> Turn:
        turn = Turn()
        async for event in answer_stream(bot=bot, conversation=conversation, user_message=text):
            turn.events.append(event)
        return turn

    return async_to_sync(run)()


@pytest.fixture
def fast_timeouts(settings) -> None:
    settings.LLM_CONNECT_TIMEOUT_MS = 1000
    # Generous: a cold SDK's first request can be slow on a busy machine; timeout tests set their own.
    settings.LLM_FIRST_TOKEN_TIMEOUT_MS = 5000
    settings.LLM_IDLE_TIMEOUT_MS = 5000
    settings.LLM_MAX_RETRY_AFTER_MS = 200
    settings.BREAKER_FAILURE_THRESHOLD = 2
    settings.BREAKER_COOLDOWN_SECONDS = 1


@pytest.fixture
def fake_openai(settings, fast_timeouts) -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        settings.OPENAI_API_KEY = server.api_key
        settings.OPENAI_BASE_URL = server.base_url
        yield server


@pytest.fixture
def fake_anthropic(settings, fast_timeouts) -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        settings.ANTHROPIC_API_KEY = server.api_key
        settings.ANTHROPIC_BASE_URL = server.base_url
        yield server


def chain(*entries: str) -> list[dict]:
    """chain("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5") -> model_chain entries."""
    out = []
    for entry in entries:
        provider, model = entry.split(":", 1)
        out.append({"provider": provider, "model": model, "params": {}})
    return out


@pytest.fixture
def conversation_a(world):
    return ConversationFactory(tenant=world.tenant_a, bot__answer_policy="general")
