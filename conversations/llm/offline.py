"""The offline extractive answerer: the default when no language model key is configured.

It never invents text. It answers with a few whole sentences of the relevant passages, chosen
for the question: each sentence is scored by the question's words it shares and by its passage's
rank, the best few are kept in the order they appear (passage by passage), and each is cited
[n] to its passage. Markdown is read, not quoted: headings, table rows and rulers, code fences
and bare list markers are never sentences, and neither are fragments a chunk boundary cut off (no
capital at the start or no full stop at the end). With nothing relevant, or no whole sentence to
quote, it says the bot's "I don't know". A closing note says no language model is configured, so
nobody mistakes it for a generated answer.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from knowledge.types import RetrievedPassage

from .base import ChatRequest, StreamItem, TextDelta, Usage
from .tokens import estimate_tokens

NOTICE = "(Quoted from the documentation: no language model is configured for this bot.)"
NOTHING_FOUND = "I don't know: the documentation has nothing on that question."
MAX_PASSAGES = 3
MAX_SENTENCES = 3
MAX_PER_PASSAGE = 2
MIN_WORDS = 4
MAX_SENTENCE_CHARS = 400
STOPWORDS = frozenset(
    "the a an and or of to in on for with is are was were be can how what why when where who which does do i you "
    "my your it this that from by at as about into me we our".split()
)
_WORD = re.compile(r"[\w'-]+", re.UNICODE)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"“(]?[A-Z0-9])")
_SKIP_LINE = re.compile(r"^\s*(#|\||```|~~~|>?\s*$|[-*_=]{3,}\s*$)|\|\s*-{3,}")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)])\s+")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|`)")
_WHOLE = re.compile(r"^[\"“(]?[A-Z0-9].*[.!?][\"”)]?$", re.DOTALL)


@dataclass(frozen=True)
class Candidate:
    number: int  # the passage's number, as cited
    position: int  # the sentence's position in its passage
    text: str
    score: float


def _terms(text: str) -> set[str]:
    # A light stem ("returns" ~ "return") so a plural in the question still matches.
    words = (m.lower() for m in _WORD.findall(text))
    return {w.removesuffix("s") if len(w) > 3 else w for w in words if len(w) > 1 and w not in STOPWORDS}


def _paragraphs(text: str) -> list[str]:
    """The passage's prose: one string per paragraph or list item, Markdown syntax removed."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if _SKIP_LINE.search(line):
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        item = _BULLET.match(line)
        if item and current:  # a list item starts its own paragraph
            paragraphs.append(" ".join(current))
            current = []
        cleaned = _EMPHASIS.sub("", _LINK.sub(r"\1", line[item.end() :] if item else line)).strip()
        if cleaned:
            current.append(cleaned)
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def sentences_of(text: str) -> list[str]:
    """The whole sentences of a passage, in order: no markup, no cut-off fragments."""
    found = []
    for paragraph in _paragraphs(text):
        for sentence in _SENTENCE_SPLIT.split(paragraph):
            sentence = re.sub(r"\s+", " ", sentence).strip()
            if (
                _WHOLE.match(sentence)
                and len(_WORD.findall(sentence)) >= MIN_WORDS
                and len(sentence) <= MAX_SENTENCE_CHARS
                and "|" not in sentence
            ):
                found.append(sentence)
    return found


def choose_sentences(query: str, passages: list[RetrievedPassage]) -> list[Candidate]:
    """The sentences to answer with, in passage order then text order."""
    terms = _terms(query)
    candidates: list[Candidate] = []
    for number, passage in enumerate(passages[:MAX_PASSAGES], start=1):
        for position, sentence in enumerate(sentences_of(passage.text)):
            overlap = len(_terms(sentence) & terms)
            # The question's words first; the passage's rank breaks ties and favours the best one.
            score = overlap + 0.5 / number - 0.01 * position
            candidates.append(Candidate(number, position, sentence, score if overlap else score - 10))
    if not candidates:
        return []
    ranked = sorted(candidates, key=lambda c: -c.score)
    matching = [c for c in ranked if c.score > 0]
    picked: list[Candidate] = []
    for candidate in matching or ranked[:1]:  # the gate kept these passages: quote the best one at least
        if sum(1 for c in picked if c.number == candidate.number) < MAX_PER_PASSAGE:
            picked.append(candidate)
        if len(picked) == MAX_SENTENCES:
            break
    return sorted(picked, key=lambda c: (c.number, c.position))


def compose_answer(query: str, passages: list[RetrievedPassage], no_answer: str = "") -> str:
    """The extractive answer, or `no_answer` (the bot's "I don't know") when there is nothing to quote.
    A correction the support team wrote (put first by the retrieve stage) is the answer as it is."""
    if passages and passages[0].correction_id is not None:
        return f"{passages[0].snippet} [1]"
    picked = choose_sentences(query, passages)
    if not picked:
        return no_answer or NOTHING_FOUND
    return " ".join(f"{c.text} [{c.number}]" for c in picked) + "\n\n" + NOTICE


class OfflineProvider:
    name = "offline"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        answer = compose_answer(request.query, request.passages, request.no_answer)
        # Stream word by word like a model would, so every client path is the same.
        for piece in re.findall(r"\S+\s*|\s+", answer):
            yield TextDelta(piece)
        prompt = request.query + "".join(p.text for p in request.passages[:MAX_PASSAGES])
        yield Usage(estimate_tokens(prompt), estimate_tokens(answer), estimated=True)

    async def aclose(self) -> None:
        return None
