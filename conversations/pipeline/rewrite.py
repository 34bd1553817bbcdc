"""Follow-up questions: rewrite the visitor's question into a standalone query before retrieval.

"And how long does that take?" retrieves nothing useful on its own: "that" is the previous
question's subject. `rewrite_query` (the retrieve stage's one call) leaves a question that looks
complete alone, or the first question of a conversation; otherwise it asks the chain's cheapest
configured model for a standalone query (one small request, a short timeout) and falls back to
a heuristic: prepend the key terms of the previous user question. The answer's prompt still gets
the visitor's own words; only retrieval uses the rewrite. The trace records it (`as_trace`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bots.catalog import cheapest
from bots.selectors import ProviderKey
from conversations.llm.base import ChatMessage, ChatRequest, ProviderError, Timeouts
from conversations.llm.registry import complete_text

log = logging.getLogger(__name__)

# A rewrite waits at most this long for the model; past it the heuristic answers. It is on the
# path to the first token, so it is short: a small model returns a dozen tokens in well under it.
MODEL_TIMEOUT = 2.5
MAX_QUERY_CHARS = 300
# "And for Norway?", "The Buds?": too short to stand alone. Not 4: "Where is the office?" and
# "How much is shipping?" are whole questions, and a needless rewrite costs a model call.
SHORT_QUESTION_WORDS = 3
RECENT_MESSAGES = 4  # of the conversation, shown to the model
_WORD = re.compile(r"[\w'-]+", re.UNICODE)
# Openings and words that lean on what was said before.
_FOLLOW_UP = re.compile(
    r"^\s*(and|but|also|so|then|what about|how about|what if)\b"
    # Not "there" or "one": "Is there a warranty?" and "one of my buds" stand alone.
    r"|\b(it|its|that|this|those|these|they|them|their|same|else)\b",
    re.IGNORECASE,
)
_STOPWORDS = frozenset(
    "a an the and or but of to in on for with is are was were be been can could how what why when where who which "
    "does do did i you my your it its this that those these they them from by at as about into me we our us "
    "have has had will would should there please any some much many long".split()
)
PROMPT = (
    "You rewrite a customer's last message into one standalone search query for a help centre. "
    "Use the conversation to resolve words like 'it', 'that' or 'and what about'. "
    "Reply with the query only, on one line, in the customer's language, without quotes."
)


@dataclass(frozen=True)
class Rewrite:
    original: str
    rewritten: str  # the query retrieval uses
    method: str  # "none" (used as asked), "heuristic" or "model"
    detail: str = ""  # why the model's rewrite was not used, when it was tried

    def as_trace(self) -> dict[str, str]:
        trace = {"original": self.original, "rewritten": self.rewritten, "method": self.method}
        if self.detail:
            trace["detail"] = self.detail
        return trace


def may_be_follow_up(text: str) -> bool:
    """Whether the question may lean on the conversation (short, a pronoun, an ellipsis)."""
    return len(_WORD.findall(text)) <= SHORT_QUESTION_WORDS or bool(_FOLLOW_UP.search(text))


def key_terms(text: str) -> list[str]:
    """The words that carry a question's subject, in order, without repeats."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text):
        lowered = word.lower()
        if len(lowered) > 1 and lowered not in _STOPWORDS:
            seen.setdefault(lowered, None)
    return list(seen)


def _previous_question(window: Sequence[ChatMessage]) -> str:
    for message in reversed(window):
        if message.role == "user" and message.content.strip():
            return message.content.strip()
    return ""


def rewrite_heuristic(text: str, window: Sequence[ChatMessage]) -> Rewrite:
    """Prepend the previous user question's key terms the question lacks. Pure."""
    previous = _previous_question(window)
    if not previous or not may_be_follow_up(text):
        return Rewrite(text, text, "none")
    own = set(key_terms(text))
    borrowed = [term for term in key_terms(previous) if term not in own]
    if not borrowed:
        return Rewrite(text, text, "none")
    return Rewrite(text, f"{' '.join(borrowed)} {text}"[:MAX_QUERY_CHARS], "heuristic")


async def rewrite_query(
    *,
    text: str,
    window: Sequence[ChatMessage],
    chain: list[dict[str, Any]],
    keys: dict[str, ProviderKey | None],
    timeout: float = MODEL_TIMEOUT,
) -> Rewrite:
    """The standalone query for `text`: unchanged when it needs no context; else the chain's
    cheapest model's rewrite, or the heuristic's when there is no such model or it fails (any
    provider error, a timeout, an empty reply). Never raises for a provider's failure."""
    heuristic = rewrite_heuristic(text, window)
    if heuristic.method == "none":
        return heuristic
    entry = cheapest(chain)
    if entry is None:
        return heuristic
    try:
        query = await asyncio.wait_for(_ask_model(entry, keys.get(entry["provider"]), text, window), timeout)
    except TimeoutError:
        return Rewrite(text, heuristic.rewritten, heuristic.method, detail="model timed out")
    except ProviderError as exc:
        return Rewrite(text, heuristic.rewritten, heuristic.method, detail=f"model failed: {exc.code}")
    except Exception:  # an unclassified client error must not cost the visitor their answer
        log.exception("query rewrite with %s:%s failed", entry["provider"], entry["model"])
        return Rewrite(text, heuristic.rewritten, heuristic.method, detail="model failed: unexpected error")
    if not query:
        return Rewrite(text, heuristic.rewritten, heuristic.method, detail="model gave no query")
    return Rewrite(text, query, "model", detail=f"{entry['provider']}:{entry['model']}")


async def _ask_model(entry: dict[str, Any], key: ProviderKey | None, text: str, window: Sequence[ChatMessage]) -> str:
    timeouts = Timeouts(connect=MODEL_TIMEOUT, first_token=MODEL_TIMEOUT, idle=MODEL_TIMEOUT)
    recent = "\n".join(f"{m.role}: {m.content[:500]}" for m in list(window)[-RECENT_MESSAGES:])
    request = ChatRequest(
        model=entry["model"],
        system=PROMPT,
        messages=[ChatMessage("user", f"Conversation:\n{recent}\n\nLast message: {text}\n\nStandalone query:")],
        max_tokens=60,
        temperature=0.0,
    )
    reply = await complete_text(entry, key, timeouts, request)
    lines = [line.strip().strip("\"'“”") for line in reply.strip().splitlines() if line.strip()]
    return lines[0][:MAX_QUERY_CHARS] if lines else ""
