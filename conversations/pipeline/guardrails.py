"""Guardrails, cheapest first: input checks, blocked topics, injection heuristics, output filter.

The output filter works on the stream: it holds back the unfinished tail of the text (never
more than the last word or digit group), so a card number or an email is redacted before any
part of it reaches the visitor, and the system-prompt canary can never be shown.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

REFUSAL = "I'm sorry, but I can't help with that topic here. Is there anything else I can help you with?"


class InputRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_input(raw: object, *, max_chars: int) -> str:
    """The visitor's text, normalised (NFC, trimmed); raises InputRejected with a stable code."""
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise InputRejected("message_encoding", "Your message is not valid UTF-8 text. Please retype it.") from None
    if not isinstance(raw, str):
        raise InputRejected("message_invalid", "A message must be text.")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not representable, not storable
        raise InputRejected(
            "message_encoding", "Your message contains characters we cannot read. Please retype it."
        ) from None
    text = unicodedata.normalize("NFC", raw)
    # Control characters other than newlines and tabs have no place in a question (NUL breaks Postgres).
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in text):
        raise InputRejected("message_encoding", "Your message contains control characters. Please retype it.")
    text = text.strip()
    if not text:
        raise InputRejected("message_empty", "Please type a question.")
    if len(text) > max_chars:
        raise InputRejected(
            "message_too_long",
            f"Your message is {len(text)} characters long; the limit is {max_chars}. Please shorten it.",
        )
    return text


def blocked_topic(text: str, topics: list[str]) -> str | None:
    """The first blocked topic the text mentions (keywords match whole words, case-insensitively)."""
    for topic in topics:
        if topic.startswith("re:"):
            pattern = topic[3:]
        else:
            pattern = r"(?<!\w)" + re.escape(topic) + r"(?!\w)"
        try:
            if re.search(pattern, text, re.IGNORECASE):
                return topic
        except re.error:
            log.warning("invalid blocked-topic pattern %r skipped", topic)
    return None


INJECTION_PATTERNS = {
    "ignore_instructions": r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|any|your|the)\b.{0,20}\b(instructions?|rules|prompts?|directions)\b",
    "reveal_prompt": r"\b(reveal|show|print|repeat|output|leak)\b.{0,40}\b(system prompt|instructions|hidden prompt|initial prompt)\b",
    "role_switch": r"\b(you are now|from now on you|act as|pretend to be|developer mode|jailbreak|DAN mode)\b",
    "fake_markup": r"(</?(system|assistant|instructions?)>|\[/?INST\]|<\|im_start\|>|###\s*system)",
}
_INJECTION = {name: re.compile(p, re.IGNORECASE | re.DOTALL) for name, p in INJECTION_PATTERNS.items()}


def injection_hits(text: str) -> list[str]:
    return [name for name, pattern in _INJECTION.items() if pattern.search(text)]


REDACTIONS = {
    # ASCII local parts and domains, so the words around an address in any script stay.
    "email": re.compile(r"(?<![A-Za-z0-9.+_-])[A-Za-z0-9.+_-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+"),
    "api_key": re.compile(
        r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|cbk_[A-Za-z0-9_]{16,})"
    ),
    "card": re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)"),
    "phone": re.compile(r"(?<![\w+])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,5}\)?){2,5}(?!\w)"),
}
MASKS = {
    "email": "[email removed]",
    "api_key": "[key removed]",
    "card": "[card number removed]",
    "phone": "[phone removed]",
}


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def redact(text: str) -> tuple[str, list[str]]:
    found: list[str] = []

    def replace(kind: str) -> object:
        def sub(match: re.Match[str]) -> str:
            value = match.group(0)
            digits = re.sub(r"\D", "", value)
            if kind == "card" and not (13 <= len(digits) <= 19 and _luhn(digits)):
                return value
            if kind == "phone" and not (9 <= len(digits) <= 15 and re.search(r"[ .()+-]", value)):
                return value
            found.append(kind)
            return MASKS[kind]

        return sub

    for kind, pattern in REDACTIONS.items():
        text = pattern.sub(replace(kind), text)
    return text, found


class CanaryLeak(Exception):
    """The model tried to output the system-prompt canary."""


_GLUE = set("0123456789+()-")
_HOLD = 48  # longer than the canary and than the usual email, card number or key


def _is_token_char(char: str) -> bool:
    return (char.isascii() and (char.isalnum() or char in "@._+-:/()")) or char.isspace()


@dataclass
class OutputFilter:
    canary: str
    redact_pii: bool
    pending: str = ""
    hits: list[dict[str, str]] = field(default_factory=list)

    def feed(self, text: str) -> str:
        """Add model text; return the part that is safe to show now. Raises CanaryLeak."""
        self.pending += text
        if self.canary and self.canary in self.pending:
            raise CanaryLeak()
        cut = self._safe_cut()
        if cut <= 0:
            return ""
        ready, self.pending = self.pending[:cut], self.pending[cut:]
        return self._clean(ready)

    def flush(self) -> str:
        if self.canary and self.canary in self.pending:
            raise CanaryLeak()
        ready, self.pending = self.pending, ""
        return self._clean(ready)

    def reset(self) -> None:
        self.pending = ""

    def _safe_cut(self) -> int:
        # The last whitespace whose neighbours are not digit-group glue: nothing sensitive spans it.
        pending = self.pending
        for i in range(len(pending) - 2, 0, -1):
            if pending[i].isspace() and pending[i - 1] not in _GLUE and pending[i + 1] not in _GLUE:
                return i + 1
        # No such space (Chinese, Japanese, Thai...): cut between two characters that cannot belong
        # to an email, a number or a key, keeping a tail long enough for the canary.
        for i in range(len(pending) - _HOLD, 0, -1):
            if not _is_token_char(pending[i - 1]) and not _is_token_char(pending[i]):
                return i
        return 0

    def _clean(self, text: str) -> str:
        if not self.redact_pii or not text:
            return text
        clean, found = redact(text)
        for kind in found:
            self.hits.append({"check": "redaction", "where": "output", "detail": kind})
        return clean
