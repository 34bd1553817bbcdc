"""Reads for evaluation sets: cases with their flags, runs, the gate's baseline, starter cases.

Tenant scope required throughout (the scoped managers raise TenantNotSet otherwise).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Q, QuerySet

from knowledge.models import Chunk, Document

from ..models import Bot, EvalCase, EvalResult, EvalRun, PromptVersion

STARTER_KEYWORDS = 2
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_STOPWORDS = frozenset(
    "this that with from your have will what when where which there their they them then than about into "
    "more most some such only also just like after before over under been being were does doesn't can't "
    "should would could each other these those here very much many".split()
)


@dataclass
class CaseView:
    case: EvalCase
    # Titles of expected documents that no longer exist: the case is flagged, never skipped.
    deleted_documents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.deleted_documents)


def eval_cases(*, bot: Bot) -> QuerySet[EvalCase]:
    return EvalCase.objects.filter(bot=bot).order_by("id")


def eval_cases_with_flags(*, bot: Bot) -> list[CaseView]:
    """The bot's cases, each with the expected documents that were deleted since. Two queries."""
    cases = list(eval_cases(bot=bot))
    wanted = {d["id"] for c in cases for d in c.expected_documents}
    existing = set(Document.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    return [
        CaseView(case=c, deleted_documents=[d for d in c.expected_documents if d["id"] not in existing]) for c in cases
    ]


def eval_runs(*, bot: Bot, limit: int = 30) -> list[EvalRun]:
    return list(EvalRun.objects.filter(bot=bot).select_related("prompt_version", "by").order_by("-created")[:limit])


def eval_run_get(*, bot: Bot, run_id: int) -> EvalRun | None:
    return EvalRun.objects.filter(bot=bot, pk=run_id).select_related("prompt_version", "baseline").first()


def eval_results(*, run: EvalRun) -> list[EvalResult]:
    return list(EvalResult.objects.filter(run=run).order_by("id"))


def eval_baseline(*, bot: Bot, published: PromptVersion | None) -> EvalRun | None:
    """The last finished run of the configuration that is live now: the published prompt version
    with the bot's current knowledge bases (a check, or a gate run whose change was applied)."""
    if published is None:
        return None
    return (
        EvalRun.objects.filter(bot=bot, prompt_version=published, status=EvalRun.Status.DONE, score__isnull=False)
        .filter(Q(purpose=EvalRun.Purpose.CHECK) | Q(gate__in=[EvalRun.Gate.APPLIED, EvalRun.Gate.CONFIRMED]))
        .order_by("-finished", "-id")
        .first()
    )


def eval_run_pending_gate(*, bot: Bot) -> EvalRun | None:
    """A gate run still waiting for its result or for the admin's decision."""
    return (
        EvalRun.objects.filter(bot=bot, gate__in=[EvalRun.Gate.WAITING, EvalRun.Gate.NEEDS_CONFIRMATION])
        .order_by("-created")
        .first()
    )


# Starter cases: one question per section of the bot's documents.


@dataclass
class Starter:
    question: str
    document_id: int
    document_title: str
    keywords: list[str]


def _question_for(heading: str, title: str) -> str:
    heading = heading.strip().rstrip(":").strip()
    if heading.endswith("?"):
        return heading
    return f"What should I know about {heading[:1].lower() + heading[1:]}?" if heading else f"What is {title} about?"


def _keywords(text: str, limit: int = STARTER_KEYWORDS) -> list[str]:
    words = Counter(w.lower() for w in _WORD.findall(text) if w.lower() not in _STOPWORDS)
    return [w for w, _n in words.most_common(limit)]


def eval_starter_cases(*, bot: Bot, limit: int = 100) -> list[Starter]:
    """Suggested cases from the bot's own documents: one question per section (the innermost
    heading of its chunks; a document without headings gets one about its title), expecting
    that document and the section's most frequent words. Reads only: the admin reviews them."""
    chunks = (
        Chunk.objects.filter(document__knowledge_base__bots=bot, document__active_version__isnull=False)
        .filter(document_version=F("document__active_version"))
        .select_related("document")
        .only("heading_path", "text", "document__id", "document__title")
        .order_by("document__title", "document_id", "position")
    )
    sections: dict[tuple[int, str], list[str]] = {}
    titles: dict[int, str] = {}
    for chunk in chunks:
        heading = str(chunk.heading_path[-1]) if chunk.heading_path else ""
        titles[chunk.document_id] = chunk.document.title
        sections.setdefault((chunk.document_id, heading), []).append(chunk.text)
    starters = []
    for (document_id, heading), texts in sections.items():
        starters.append(
            Starter(
                question=_question_for(heading, titles[document_id]),
                document_id=document_id,
                document_title=titles[document_id],
                keywords=_keywords(" ".join(texts)),
            )
        )
        if len(starters) >= limit:
            break
    return starters
