"""Typed events yielded by `answer_stream(*, bot, conversation, user_message)`.

`answer_stream` (conversations/pipeline/service.py, issue 4) is the one service call used by the
WebSocket consumer, the REST/SSE API, the OpenAI-compatible endpoint and the CLI. It is an async
generator. Before it yields anything, the visitor's message and an assistant message in status
`streaming` exist in the database; `Start` carries their ids. The stream always ends with exactly one
`Done` or `Error`, and by then the assistant message is settled (`complete`, `partial` or `failed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Start:
    user_message_id: int
    assistant_message_id: int
    conversation_id: int


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Reset:
    """The provider failed after text was sent; discard what was shown and start over."""

    reason: str


@dataclass(frozen=True)
class Citations:
    # [{"n": 1, "chunk_id": .., "document_id": .., "title": .., "page": .., "url": .., "snippet": ..}]
    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Done:
    assistant_message_id: int
    content: str
    model: str
    tokens_in: int
    tokens_out: int
    cost: Decimal
    latency: dict[str, float] = field(default_factory=dict)
    # The provider attempts, as stored in the trace: for metrics, without reading the trace back.
    attempts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Error:
    code: str  # stable: message_empty, message_too_long, quota_exceeded, rate_limited, all_providers_failed, ...
    message: str  # a human sentence
    retry_after: float | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)  # as Done.attempts, when providers were tried


AnswerEvent = Start | Delta | Reset | Citations | Done | Error
