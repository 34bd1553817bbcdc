"""The one interface every provider implements, and the errors they raise.

A provider streams `TextDelta`s and ends with exactly one `Usage`. It raises `ProviderError`
with a classification the failover chain acts on: retryable errors (429, 5xx, 529, dropped
connections, an error event after a 200) move on to the next provider and count against the
circuit breaker; the others (bad key, exhausted quota, invalid request) move on without
retrying and without tripping the breaker, because they are configuration problems.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from knowledge.types import RetrievedPassage


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ChatRequest:
    model: str
    system: str
    messages: list[ChatMessage]
    max_tokens: int
    temperature: float
    top_p: float | None = None
    # The offline answerer composes from these; model providers get them inside `system`.
    passages: list[RetrievedPassage] = field(default_factory=list)
    query: str = ""
    no_answer: str = ""  # the bot's "I don't know", for the offline answerer when nothing is relevant


@dataclass(frozen=True)
class Timeouts:
    connect: float
    first_token: float
    idle: float


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    tokens_in: int
    tokens_out: int
    estimated: bool = False


StreamItem = TextDelta | Usage


class ProviderError(Exception):
    """A classified provider failure. `code` is stable; `message` is actionable for the trace."""

    def __init__(
        self, message: str, *, code: str, retryable: bool, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class LLMProvider(Protocol):
    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        """Yield text deltas, then one Usage. Raise ProviderError on failure."""
        ...

    async def aclose(self) -> None: ...
