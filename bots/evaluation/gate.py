"""Starting evaluation runs, and the publishing gate in front of prompt publishing and
knowledge-base changes.

The gate: publishing a prompt version, or changing a bot's knowledge bases, first runs the bot's
evaluation set with the candidate (a run on Celery, purpose `publish` or `knowledge`, gate
`waiting`). When the run finishes the runner calls gate_settle: a score within the bot's
eval_margin of the baseline (the published configuration's last run) applies the change; a
bigger drop, or a failed run, waits for the admin (gate `needs_confirmation`), who confirms
(gate_confirm: applied, and the drop is recorded in the publication log) or cancels. A bot with
no cases is not gated: the change applies at once, with a note in the log saying so.

The runner lives in conversations (it needs the answer pipeline, above bots); it registers how
to queue a run with register_run_starter from ConversationsConfig.ready().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.utils import timezone

from chatbot_saas.errors import AppError

from .. import services
from ..models import Bot, EvalCase, EvalRun, PromptPublication, PromptVersion
from . import selectors

NO_CASES_NOTE = "This bot has no evaluation cases, so nothing was checked before publishing."
NO_BASELINE_NOTE = "No earlier run of the published version to compare with."

_run_starter: Callable[[EvalRun], None] | None = None


def register_run_starter(start: Callable[[EvalRun], None]) -> None:
    """`start(run)` queues the run (conversations registers its Celery task). Replaces an earlier one."""
    global _run_starter
    _run_starter = start


class EvalNoCases(AppError):
    code = "eval_no_cases"
    status = 400


class EvalGateClosed(AppError):
    code = "eval_gate_closed"
    status = 409


def eval_run_create(
    *,
    bot: Bot,
    by: Any = None,
    purpose: str = EvalRun.Purpose.CHECK,
    prompt_version: PromptVersion | None = None,
    knowledge_base_ids: list[int] | None = None,
) -> EvalRun:
    """Create a queued run of the bot's evaluation set and queue it once the transaction commits.

    Raises EvalNoCases when the bot has no cases. Tenant scope required. A check runs the
    published prompt; gate runs name their candidate.
    """
    if not EvalCase.objects.filter(bot=bot).exists():
        raise EvalNoCases(
            f"The bot “{bot.name}” has no evaluation cases yet. Add some, import a file, or generate "
            "starter cases from its documents, then run the evaluation."
        )
    if _run_starter is None:
        raise ImproperlyConfigured("No evaluation runner is registered (is the conversations app installed?).")
    if prompt_version is None:
        prompt_version = PromptVersion.objects.filter(bot=bot, is_published=True).first()
    gate = EvalRun.Gate.NONE if purpose == EvalRun.Purpose.CHECK else EvalRun.Gate.WAITING
    run = EvalRun.objects.create(
        bot=bot,
        by=by,
        purpose=purpose,
        gate=gate,
        prompt_version=prompt_version,
        knowledge_base_ids=knowledge_base_ids,
    )
    start = _run_starter
    transaction.on_commit(lambda: start(run))
    return run


@dataclass
class GateOutcome:
    publication: PromptPublication | None = None  # set when the change was applied at once
    run: EvalRun | None = None  # set when the change waits for this run
    applied: bool = False


def _cancel_pending(bot: Bot) -> None:
    # A newer change supersedes one still waiting: only the latest candidate can go live.
    EvalRun.objects.filter(bot=bot, gate__in=[EvalRun.Gate.WAITING, EvalRun.Gate.NEEDS_CONFIRMATION]).update(
        gate=EvalRun.Gate.CANCELLED
    )


def _publish_action(bot: Bot, version: PromptVersion) -> str:
    current = PromptVersion.objects.filter(bot=bot, is_published=True).first()
    if current and version.number < current.number:
        return PromptPublication.Action.ROLLBACK
    return PromptPublication.Action.PUBLISH


@transaction.atomic
def gate_publish_prompt(*, bot: Bot, version: PromptVersion, by: Any = None) -> GateOutcome:
    """Publish `version` through the gate: at once when the bot has no cases (noted in the log)
    or the version is already live; otherwise start its evaluation run. Tenant scope required."""
    if version.bot_id != bot.pk:
        raise ValidationError({"version": "This version belongs to another bot."})
    if version.is_published:
        return GateOutcome(applied=True)
    if not EvalCase.objects.filter(bot=bot).exists():
        publication = services.bot_publish_prompt(
            bot=bot, version=version, by=by, action=_publish_action(bot, version), note=NO_CASES_NOTE
        )
        return GateOutcome(publication=publication, applied=True)
    _cancel_pending(bot)
    run = eval_run_create(bot=bot, by=by, purpose=EvalRun.Purpose.PUBLISH, prompt_version=version)
    return GateOutcome(run=run)


@transaction.atomic
def gate_change_knowledge(*, bot: Bot, knowledge_base_ids: list[int], by: Any = None) -> GateOutcome:
    """Replace the bot's knowledge bases through the gate: at once when unchanged or the bot has
    no cases; otherwise start an evaluation run with the new set. Unknown ids are refused now."""
    from knowledge.models import KnowledgeBase

    wanted = sorted(set(knowledge_base_ids))
    if len(KnowledgeBase.objects.filter(pk__in=wanted)) != len(wanted):
        raise ValidationError({"knowledge_bases": "Unknown knowledge base."})
    current = sorted(bot.knowledge_bases.values_list("pk", flat=True))
    if wanted == current or not EvalCase.objects.filter(bot=bot).exists():
        services.bot_attach_knowledge_bases(bot=bot, knowledge_base_ids=wanted)
        return GateOutcome(applied=True)
    _cancel_pending(bot)
    run = eval_run_create(bot=bot, by=by, purpose=EvalRun.Purpose.KNOWLEDGE, knowledge_base_ids=wanted)
    return GateOutcome(run=run)


def _apply(run: EvalRun, *, confirmed: bool, by: Any) -> None:
    bot = run.bot
    if run.purpose == EvalRun.Purpose.PUBLISH and run.prompt_version is not None:
        drop = run.scores.get("drop")
        note = "" if run.baseline_id else NO_BASELINE_NOTE
        if run.status == EvalRun.Status.FAILED:
            note = f"Published without a finished evaluation: {run.error_message}"[:300]
        services.bot_publish_prompt(
            bot=bot,
            version=run.prompt_version,
            by=by or run.by,
            action=_publish_action(bot, run.prompt_version),
            eval_run=run,
            score_drop=drop,
            confirmed_drop=confirmed,
            note=note,
        )
    elif run.purpose == EvalRun.Purpose.KNOWLEDGE and run.knowledge_base_ids is not None:
        services.bot_attach_knowledge_bases(bot=bot, knowledge_base_ids=list(run.knowledge_base_ids))
    run.gate = EvalRun.Gate.CONFIRMED if confirmed else EvalRun.Gate.APPLIED
    run.save(update_fields=["gate"])


@transaction.atomic
def gate_settle(*, run_id: int) -> EvalRun:
    """Decide a finished gate run: apply its change when the score held within the bot's margin,
    else wait for confirmation. Records the baseline and the drop on the run. Locks the run, so
    a settle and a confirm cannot both apply it. A run that is no gate, or decided, is left alone."""
    run = EvalRun.objects.select_for_update(of=("self",)).select_related("bot", "prompt_version").get(pk=run_id)
    if run.gate != EvalRun.Gate.WAITING or not run.is_finished:
        return run
    published = PromptVersion.objects.filter(bot=run.bot, is_published=True).first()
    baseline = selectors.eval_baseline(bot=run.bot, published=published)
    drop = None
    if baseline is not None and run.score is not None:
        drop = round(baseline.score - run.score, 1)
    run.baseline = baseline
    run.scores = {**run.scores, "drop": drop, "margin": run.bot.eval_margin}
    run.save(update_fields=["baseline", "scores"])
    if run.status == EvalRun.Status.DONE and (drop is None or drop <= run.bot.eval_margin):
        _apply(run, confirmed=False, by=None)
    else:
        run.gate = EvalRun.Gate.NEEDS_CONFIRMATION
        run.save(update_fields=["gate"])
    return run


@transaction.atomic
def gate_confirm(*, run: EvalRun, by: Any = None) -> EvalRun:
    """Apply a gate run's change despite its drop (or its failure): the admin's explicit
    decision, recorded with the drop in the publication log."""
    run = EvalRun.objects.select_for_update(of=("self",)).select_related("bot", "prompt_version").get(pk=run.pk)
    if run.gate != EvalRun.Gate.NEEDS_CONFIRMATION:
        raise EvalGateClosed("This change is not waiting for a confirmation any more. Reload the page.")
    _apply(run, confirmed=True, by=by)
    return run


@transaction.atomic
def gate_cancel(*, run: EvalRun) -> EvalRun:
    """Drop a gate run's change; nothing is published or attached."""
    run = EvalRun.objects.select_for_update().get(pk=run.pk)
    if run.gate not in (EvalRun.Gate.WAITING, EvalRun.Gate.NEEDS_CONFIRMATION):
        raise EvalGateClosed("This change was already decided. Reload the page.")
    run.gate = EvalRun.Gate.CANCELLED
    run.save(update_fields=["gate"])
    return run


def eval_run_finish(*, run: EvalRun, scores: dict[str, Any] | None, error_code: str = "", error: str = "") -> None:
    """Record a run's end (done with scores, or failed with a code and sentence)."""
    run.finished = timezone.now()
    if scores is None:
        run.status = EvalRun.Status.FAILED
        run.error_code, run.error_message = error_code, error
    else:
        run.status = EvalRun.Status.DONE
        run.score = scores.get("score")
        run.scores = scores
    run.save(update_fields=["finished", "status", "score", "scores", "error_code", "error_message"])
