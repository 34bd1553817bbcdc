"""The offline extractive answerer: the default when no language model key is configured.

It never invents text. It picks the sentences of the retrieved passages that share the most
words with the question, cites each with its passage number, and says plainly that no language
model is configured, so nobody mistakes it for a generated answer.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from knowledge.types import RetrievedPassage

from .base import ChatRequest, StreamItem, TextDelta, Usage
from .tokens import estimate_tokens

NOTICE = "No language model is configured for this bot, so this answer quotes the documentation directly."
NOTHING_FOUND = "No language model is configured for this bot, and the documentation has nothing on that question."
MAX_PASSAGES = 3
MAX_SENTENCE_CHARS = 320
STOPWORDS = frozenset(
    "the a an and or of to in on for with is are was were be can how what why when where who which does do i you "
    "my your it this that from by at as about into me we our".split()
)
_WORD = re.compile(r"[\w'-]+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _terms(text: str) -> set[str]:
    return {w for w in (m.lower() for m in _WORD.findall(text)) if len(w) > 1 and w not in STOPWORDS}


def best_sentences(passage: RetrievedPassage, query_terms: set[str], limit: int = 2) -> str:
    sentences = [s.strip() for s in _SENTENCE_END.split(passage.text) if s.strip()]
    if not sentences:
        return ""
    scored = sorted(range(len(sentences)), key=lambda i: (-len(_terms(sentences[i]) & query_terms), i))[:limit]
    picked = " ".join(sentences[i] for i in sorted(scored))
    if len(picked) > MAX_SENTENCE_CHARS:
        picked = picked[: MAX_SENTENCE_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return picked


def compose_answer(query: str, passages: list[RetrievedPassage]) -> str:
    if not passages:
        return NOTHING_FOUND
    terms = _terms(query)
    lines = [NOTICE, ""]
    for number, passage in enumerate(passages[:MAX_PASSAGES], start=1):
        excerpt = best_sentences(passage, terms)
        if excerpt:
            lines.append(f"- {excerpt} [{number}]")
    return "\n".join(lines)


class OfflineProvider:
    name = "offline"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        answer = compose_answer(request.query, request.passages)
        # Stream word by word like a model would, so every client path is the same.
        for piece in re.findall(r"\S+\s*|\s+", answer):
            yield TextDelta(piece)
        prompt = request.query + "".join(p.text for p in request.passages[:MAX_PASSAGES])
        yield Usage(estimate_tokens(prompt), estimate_tokens(answer), estimated=True)

    async def aclose(self) -> None:
        return None
