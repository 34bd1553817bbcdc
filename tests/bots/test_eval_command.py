"""`manage.py eval`: a bot's evaluation set from the shell, run by Celery, printed as JSON."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from bots.evaluation import cases
from tenants.context import tenant_context


def test_eval_runs_the_set_and_prints_scores_per_case_as_json(transactional_db, help_bot, world, eager_celery, capsys):
    with tenant_context(world.tenant_a):
        cases.eval_case_create(
            bot=help_bot.bot,
            question="How long does delivery take?",
            document_ids=[help_bot.shipping.pk],
            keywords=["working days"],
        )
        cases.eval_case_create(
            bot=help_bot.bot,
            question="Can I return a product?",
            document_ids=[help_bot.returns.pk],
            keywords=["30 days", "unicorn"],
        )
    call_command("eval", tenant="acme", bot="helper")
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "done" and result["prompt_version"] == 1
    assert [c["question"] for c in result["cases"]] == ["How long does delivery take?", "Can I return a product?"]
    assert result["cases"][1]["keyword_coverage"] == 0.5  # "unicorn" is in no answer
    assert result["score"] == round(100 * sum(c["score"] for c in result["cases"]) / 2, 1)
    assert set(result["scores"]) >= {
        "hit_at_k",
        "mrr",
        "citation_accuracy",
        "refusal_correctness",
        "keyword_coverage",
        "latency_ms_p50",
        "cost",
    }


def test_eval_on_a_bot_without_cases_says_so_in_json_and_fails(help_bot, capsys):
    with pytest.raises(CommandError, match="no evaluation cases"):
        call_command("eval", tenant="acme", bot="helper")
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "eval_no_cases"


def test_eval_refuses_unknown_workspaces_and_bots(world):
    with pytest.raises(CommandError, match="No workspace"):
        call_command("eval", tenant="nope", bot="helper")
    with pytest.raises(CommandError, match="No bot named"):
        call_command("eval", tenant="acme", bot="nope")
