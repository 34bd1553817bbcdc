"""A candidate configuration for evaluation turns: the prompt or knowledge bases a change would
put live, used by the turn in place of the published ones.

The publishing gate (conversations/evaluation/) must judge the prompt version about to be
published, through the same pipeline visitors use, before it is published. It sets this context
variable around its turns; the turn reads it where it reads the published prompt and the bot's
knowledge bases (turn._read_inputs). Unset, which is always the case outside evaluation runs,
the turn is exactly what it was. A context variable, not an argument, so the pipeline's public
entry point and its stages keep their signatures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Candidate:
    prompt_text: str | None = None
    prompt_number: int | None = None
    # [{"id": kb id, "model": its embedding model}], as the turn's own read returns them.
    knowledge_bases: list[dict[str, Any]] | None = None


_candidate: ContextVar[Candidate | None] = ContextVar("evaluation_candidate", default=None)


@contextmanager
def evaluating(candidate: Candidate) -> Iterator[None]:
    token = _candidate.set(candidate)
    try:
        yield
    finally:
        _candidate.reset(token)


def active() -> bool:
    """Whether this turn is an evaluation turn (a candidate is set)."""
    return _candidate.get() is not None


def apply(
    *, prompt: tuple[str, int | None] | None, knowledge_bases: list[tuple[int, str]]
) -> tuple[tuple[str, int | None] | None, list[tuple[int, str]]]:
    """The turn's published prompt ((text, number)) and knowledge bases ([(id, embedding
    model)]), replaced by the candidate's where it sets them."""
    candidate = _candidate.get()
    if candidate is None:
        return prompt, knowledge_bases
    if candidate.prompt_text is not None:
        prompt = (candidate.prompt_text, candidate.prompt_number)
    if candidate.knowledge_bases is not None:
        knowledge_bases = [(kb["id"], kb["model"]) for kb in candidate.knowledge_bases]
    return prompt, knowledge_bases
