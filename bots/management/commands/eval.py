"""`manage.py eval --tenant SLUG --bot NAME`: run a bot's evaluation set and print the result as JSON.

The run goes to the Celery worker like one started from the dashboard (a worker must be
running, or CELERY_TASK_ALWAYS_EAGER set); the command waits for it (--wait, the default, up to
--timeout seconds) and prints the run's scores and each case's outcome. --no-wait prints the
queued run's id and returns. Exit status 1 when the run failed or the bot has no cases; the JSON
then holds {"error": {"code", "message"}}.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from bots.evaluation import gate, selectors
from bots.models import EvalRun
from bots.selectors import bot_by_name_or_public_id
from tenants.context import tenant_context
from tenants.selectors import tenant_by_slug

POLL_SECONDS = 0.5


def run_as_json(run: EvalRun) -> dict[str, Any]:
    data: dict[str, Any] = {
        "run_id": run.pk,
        "bot": run.bot.name,
        "status": run.status,
        "prompt_version": run.prompt_version.number if run.prompt_version else None,
        "score": run.score,
        "scores": run.scores,
    }
    if run.status == EvalRun.Status.FAILED:
        data["error"] = {"code": run.error_code, "message": run.error_message}
    if run.is_finished:
        data["cases"] = [
            {
                "question": r.question,
                "score": round(r.score, 4),
                "hit": r.hit,
                "reciprocal_rank": r.reciprocal_rank,
                "citation_accuracy": r.citation_accuracy,
                "refused": r.refused,
                "refusal_correct": r.refusal_correct,
                "keyword_coverage": r.keyword_coverage,
                "latency_ms": r.latency_ms,
                "cost": str(r.cost),
                "flags": r.flags,
            }
            for r in selectors.eval_results(run=run)
        ]
    return data


class Command(BaseCommand):
    help = "Run a bot's evaluation set through the answer pipeline (on the Celery worker) and print JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="workspace slug")
        parser.add_argument("--bot", required=True, help="bot name (or public id)")
        parser.add_argument("--wait", dest="wait", action="store_true", default=True, help="wait for the result")
        parser.add_argument("--no-wait", dest="wait", action="store_false", help="queue the run and return")
        parser.add_argument("--timeout", type=float, default=600, help="seconds to wait (default 600)")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = tenant_by_slug(slug=opts["tenant"])
        if tenant is None:
            raise CommandError(f"No workspace with slug {opts['tenant']!r}.")
        with tenant_context(tenant):
            bot = bot_by_name_or_public_id(ref=opts["bot"])
            if bot is None:
                raise CommandError(f"No bot named {opts['bot']!r} in {tenant.slug}.")
            try:
                run = gate.eval_run_create(bot=bot)
            except gate.EvalNoCases as exc:
                self.stdout.write(json.dumps(exc.as_dict()))
                raise CommandError(exc.message) from None
            deadline = time.monotonic() + opts["timeout"]
            while opts["wait"] and not run.is_finished and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                run.refresh_from_db()
            self.stdout.write(json.dumps(run_as_json(run), default=str))
        if opts["wait"] and not run.is_finished:
            raise CommandError(f"The run {run.pk} did not finish within {opts['timeout']:.0f} s; is a worker running?")
        if run.status == EvalRun.Status.FAILED:
            raise CommandError(f"The run failed: {run.error_message}")
