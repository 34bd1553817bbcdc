"""eval_run_execute: answer each case of a run through the answer pipeline, score it, settle the gate.

Guarantees:
- Each case is one real turn through `answer_stream`, the call behind the widget, the API and
  `manage.py ask`, in its own conversation on the `eval` channel (so cases do not see each
  other's history, and the dashboard's conversation list leaves them out).
- Gate runs answer with their candidate (the prompt version to publish, or the new knowledge
  bases) through conversations.pipeline.candidate; nothing is published while they run.
- Usage is what the pipeline records for any turn: each case counts one message against the
  plan's quota, once; the runner records no usage of its own. A quota refusal ends the run
  `failed` with code quota_exceeded and the plan's sentence.
- An expected document that was deleted flags the case's result (`deleted_document:<id>`); the
  case is still answered and scored, so the run cannot look better by skipping it.
- Idempotent per run: a finished run is left alone; one found `running` (its worker died, and
  the message came back: tasks are acks_late) starts over.
Tenant scope required (the Celery task sets it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync

from bots.evaluation.gate import eval_run_finish, gate_settle
from bots.models import Bot, EvalCase, EvalResult, EvalRun
from conversations.models import Conversation, Message
from conversations.pipeline.candidate import Candidate, evaluating
from conversations.pipeline.events import Error, Start
from conversations.pipeline.service import answer_stream
from knowledge.models import Document, KnowledgeBase

from .scoring import CaseScore, score_case, score_run


@dataclass
class _Turn:
    message_id: int = 0
    error_code: str = ""
    error_message: str = ""
    seconds: float = 0.0


async def _ask(bot: Bot, conversation: Conversation, question: str) -> _Turn:
    turn = _Turn()
    started = time.perf_counter()
    async for event in answer_stream(bot=bot, conversation=conversation, user_message=question):
        if isinstance(event, Start):
            turn.message_id = event.assistant_message_id
        elif isinstance(event, Error):
            turn.error_code, turn.error_message = event.code, event.message
    turn.seconds = time.perf_counter() - started
    return turn


def _candidate(run: EvalRun) -> Candidate:
    version = run.prompt_version
    bases = None
    if run.knowledge_base_ids is not None:
        bases = [
            {"id": kb.pk, "model": kb.embedding_model}
            for kb in KnowledgeBase.objects.filter(pk__in=run.knowledge_base_ids).order_by("id")
        ]
    return Candidate(
        prompt_text=version.text if version else None,
        prompt_number=version.number if version else None,
        knowledge_bases=bases,
    )


def _result(run: EvalRun, case: EvalCase, turn: _Turn, existing: set[int]) -> tuple[EvalResult, CaseScore]:
    message = Message.objects.select_related("trace").filter(pk=turn.message_id).first() if turn.message_id else None
    trace = getattr(message, "trace", None) if message else None
    retrieved = [int(p["document_id"]) for p in (trace.retrieved if trace else []) if p.get("document_id")]
    cited = [int(c["document_id"]) for c in (message.citations if message else []) if c.get("document_id")]
    answer = message.content if message else ""
    scored = score_case(
        expected_document_ids=[d["id"] for d in case.expected_documents],
        expected_keywords=list(case.expected_keywords),
        should_refuse=case.should_refuse,
        retrieved_document_ids=retrieved,
        cited_document_ids=cited,
        answer=answer,
        k=run.bot.retrieval_k,
    )
    scored.flags = [f"deleted_document:{d['id']}" for d in case.expected_documents if d["id"] not in existing]
    if turn.error_code:
        scored.flags.append(f"turn_error:{turn.error_code}")
    latency = float((message.latency or {}).get("total_ms") or 0) if message else 0.0
    result = EvalResult(
        tenant_id=run.tenant_id,
        run=run,
        case=case,
        question=case.question,
        answer=answer,
        refused=scored.refused,
        retrieved_document_ids=retrieved,
        cited_document_ids=cited,
        hit=scored.hit,
        reciprocal_rank=scored.reciprocal_rank,
        citation_accuracy=scored.citation_accuracy,
        refusal_correct=scored.refusal_correct,
        keyword_coverage=scored.keyword_coverage,
        score=scored.score,
        latency_ms=latency or round(turn.seconds * 1000, 1),
        cost=message.cost if message else Decimal("0"),
        flags=scored.flags,
    )
    return result, scored


def eval_run_execute(*, run_id: int) -> EvalRun | None:
    """Run the evaluation set of run `run_id` (see the module docstring). None for an unknown id."""
    run = EvalRun.objects.select_related("bot", "prompt_version").filter(pk=run_id).first()
    if run is None or run.is_finished:
        return run
    if run.gate == EvalRun.Gate.CANCELLED:  # superseded before it started: spend no quota on it
        eval_run_finish(run=run, scores=None, error_code="eval_cancelled", error="A newer change replaced this one.")
        return run
    EvalResult.objects.filter(run=run).delete()
    run.status = EvalRun.Status.RUNNING
    run.save(update_fields=["status"])
    cases = list(EvalCase.objects.filter(bot=run.bot).order_by("id"))
    if not cases:
        eval_run_finish(run=run, scores=None, error_code="eval_no_cases", error="The bot has no evaluation cases.")
        gate_settle(run_id=run.pk)
        return run
    existing = set(
        Document.objects.filter(pk__in={d["id"] for c in cases for d in c.expected_documents}).values_list(
            "pk", flat=True
        )
    )
    scored: list[CaseScore] = []
    results: list[EvalResult] = []
    failure: tuple[str, str] | None = None
    with evaluating(_candidate(run)):
        for case in cases:
            conversation = Conversation.objects.create(
                bot=run.bot, channel=Conversation.Channel.EVAL, visitor_id=f"eval-run-{run.pk}"
            )
            turn = async_to_sync(_ask)(run.bot, conversation, case.question)
            if turn.error_code == "quota_exceeded":
                failure = (turn.error_code, turn.error_message)
                break
            result, score = _result(run, case, turn, existing)
            results.append(result)
            scored.append(score)
    EvalResult.objects.bulk_create(results)
    if failure:
        eval_run_finish(run=run, scores=None, error_code=failure[0], error=failure[1])
    else:
        summary: dict[str, Any] = score_run(scored, [r.latency_ms for r in results], [Decimal(r.cost) for r in results])
        eval_run_finish(run=run, scores=summary)
    return gate_settle(run_id=run.pk)
