"""Evaluation sets: cases, scoring through the real answer pipeline, flags, and the publishing gate."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from billing.models import UsageCounter
from bots.evaluation import cases, gate, selectors
from bots.models import EvalResult, EvalRun, PromptPublication, PromptVersion
from bots.services import prompt_version_create
from conversations.evaluation.runner import eval_run_execute
from conversations.evaluation.scoring import score_case
from conversations.models import Conversation
from conversations.selectors import conversation_list_for_dashboard
from tenants.context import tenant_context


def _add_cases(help_bot):
    bot = help_bot.bot
    cases.eval_case_create(
        bot=bot, question="How long does delivery take?", document_ids=[help_bot.shipping.pk], keywords=["working days"]
    )
    cases.eval_case_create(
        bot=bot,
        question="How many days do I have to return a product?",
        document_ids=[help_bot.returns.pk],
        keywords=["30 days"],
    )


def test_a_case_scores_retrieval_citations_keywords_and_refusal():
    scored = score_case(
        expected_document_ids=[7],
        expected_keywords=["refund", "label"],
        should_refuse=False,
        retrieved_document_ids=[3, 7, 7],
        cited_document_ids=[7, 3],
        answer="Print the label for your refund.",
        k=5,
    )
    assert (scored.hit, scored.reciprocal_rank, scored.citation_accuracy) == (True, 0.5, 0.5)
    assert scored.keyword_coverage == 1.0 and scored.refusal_correct and not scored.refused
    assert scored.score == pytest.approx((1 + 0.5 + 1 + 1) / 4)


def test_a_case_that_should_be_refused_scores_only_the_refusal():
    answered = score_case(
        expected_document_ids=[],
        expected_keywords=[],
        should_refuse=True,
        retrieved_document_ids=[1],
        cited_document_ids=[1],
        answer="Canberra [1]",
        k=5,
    )
    refused = score_case(
        expected_document_ids=[],
        expected_keywords=[],
        should_refuse=True,
        retrieved_document_ids=[],
        cited_document_ids=[],
        answer="I don't know.",
        k=5,
    )
    assert (answered.score, answered.refusal_correct) == (0.0, False)
    assert (refused.score, refused.refusal_correct, refused.hit) == (1.0, True, None)


def test_a_run_answers_each_case_through_the_pipeline_and_scores_it(help_bot, world):
    with tenant_context(world.tenant_a):
        _add_cases(help_bot)
        run = EvalRun.objects.create(bot=help_bot.bot, prompt_version=PromptVersion.objects.get(bot=help_bot.bot))
        used_before = sum(UsageCounter.objects.values_list("messages", flat=True))
        eval_run_execute(run_id=run.pk)
        run.refresh_from_db()
        results = list(EvalResult.objects.filter(run=run).order_by("id"))
        used_after = sum(UsageCounter.objects.values_list("messages", flat=True))
        visible = conversation_list_for_dashboard()
    assert run.status == "done" and len(results) == 2
    delivery = results[0]
    assert help_bot.shipping.pk in delivery.cited_document_ids and delivery.hit
    assert delivery.keyword_coverage == 1.0 and "working days" in delivery.answer
    assert run.scores["cases"] == 2 and run.scores["hit_at_k"] == 1.0
    expected = round(100 * sum(r.score for r in results) / 2, 1)
    assert run.score == expected and 0 < run.score <= 100
    assert run.scores["latency_ms_p50"] > 0
    # Each case is one message against the quota, counted once; none shows among visitors' conversations.
    assert used_after - used_before == 2
    assert visible == [] and Conversation.objects.unscoped().filter(channel="eval").count() == 2


def test_a_case_naming_a_deleted_document_is_flagged_not_skipped(help_bot, world):
    with tenant_context(world.tenant_a):
        _add_cases(help_bot)
        Document_pk = help_bot.returns.pk
        help_bot.returns.delete()
        views = selectors.eval_cases_with_flags(bot=help_bot.bot)
        run = EvalRun.objects.create(bot=help_bot.bot)
        eval_run_execute(run_id=run.pk)
        run.refresh_from_db()
        results = list(EvalResult.objects.filter(run=run).order_by("id"))
    assert [v.flagged for v in views] == [False, True]
    assert views[1].deleted_documents == [{"id": Document_pk, "title": "Returns"}]
    assert len(results) == 2 and results[1].flags == [f"deleted_document:{Document_pk}"]
    assert results[1].hit is False and run.scores["flagged"] == 1


def test_a_run_on_a_bot_with_no_cases_says_so(help_bot, world):
    with tenant_context(world.tenant_a), pytest.raises(gate.EvalNoCases) as caught:
        gate.eval_run_create(bot=help_bot.bot)
    assert caught.value.code == "eval_no_cases" and "no evaluation cases" in caught.value.message


def test_a_run_over_the_message_quota_fails_with_the_plans_sentence(help_bot, world):
    from billing.services import current_period, plan_default

    with tenant_context(world.tenant_a):
        _add_cases(help_bot)
        limit = plan_default().max_messages_per_month
        UsageCounter.objects.update_or_create(
            period=current_period(), defaults={"tenant": world.tenant_a, "messages": limit}
        )
        run = EvalRun.objects.create(bot=help_bot.bot)
        eval_run_execute(run_id=run.pk)
        run.refresh_from_db()
        used = UsageCounter.objects.get(period=current_period()).messages
    assert run.status == "failed" and run.error_code == "quota_exceeded"
    assert "plan allows" in run.error_message and used == limit


def test_a_case_must_name_the_bots_own_documents(help_bot, world):
    from tests.bots.conftest import make_help_bot

    other = make_help_bot(world.tenant_b, name="other")
    with tenant_context(world.tenant_a), pytest.raises(ValidationError) as caught:
        cases.eval_case_create(bot=help_bot.bot, question="Where?", document_ids=[other.shipping.pk], keywords=[])
    assert "expected_documents" in caught.value.message_dict


def test_starter_cases_ask_one_question_per_section_of_the_bots_documents(help_bot, world):
    with tenant_context(world.tenant_a):
        starters = selectors.eval_starter_cases(bot=help_bot.bot)
    questions = {(s.document_title, s.question) for s in starters}
    assert ("Shipping", "What should I know about delivery times?") in questions
    assert ("Returns", "What should I know about refund timing?") in questions
    assert all(s.keywords for s in starters)
    assert len({s.question for s in starters}) == len(starters)


def test_cases_export_to_csv_and_json_and_import_back(help_bot, world):
    with tenant_context(world.tenant_a):
        _add_cases(help_bot)
        cases.eval_case_create(
            bot=help_bot.bot,
            question="What is the capital of Australia?",
            document_ids=[],
            keywords=[],
            should_refuse=True,
        )
        exported = {fmt: cases.eval_cases_export(bot=help_bot.bot, fmt=fmt) for fmt in ("csv", "json")}
        before = [
            (c.question, c.expected_documents, c.expected_keywords, c.should_refuse)
            for c in selectors.eval_cases(bot=help_bot.bot)
        ]
        for fmt in ("csv", "json"):
            selectors.eval_cases(bot=help_bot.bot).delete()
            cases.eval_cases_import(bot=help_bot.bot, text=exported[fmt], fmt=fmt)
            after = [
                (c.question, c.expected_documents, c.expected_keywords, c.should_refuse)
                for c in selectors.eval_cases(bot=help_bot.bot)
            ]
            assert after == before, fmt
    assert "Shipping" in exported["csv"] and '"should_refuse": true' in exported["json"]


def test_a_malformed_csv_import_lists_each_bad_line_and_saves_nothing(help_bot, world):
    text = (
        "question,expected_documents,expected_keywords,should_refuse\n"
        "How long does delivery take?,Shipping,working days,no\n"
        ",Shipping,,no\n"
        "Where is my parcel?,Tracking,,no\n"
        "Capital of Australia?,,,perhaps\n"
    )
    with tenant_context(world.tenant_a):
        with pytest.raises(cases.ImportErrors) as caught:
            cases.eval_cases_import(bot=help_bot.bot, text=text, fmt="csv")
        saved = selectors.eval_cases(bot=help_bot.bot).count()
    assert caught.value.lines == [
        "Line 3: A case needs a question.",
        "Line 4: no document titled 'Tracking' in this bot's knowledge bases.",
        "Line 5: should_refuse must be yes or no.",
    ]
    assert saved == 0


def test_a_malformed_json_import_names_the_line_of_the_error(help_bot, world):
    broken = '[\n  {"question": "How long does delivery take?"},\n  {"question": "Oops",\n]\n'
    bad_item = '[\n  {"question": "Fine"},\n  "not an object",\n  {"question": "x", "should_refuse": "maybe"}\n]'
    with tenant_context(world.tenant_a):
        with pytest.raises(cases.ImportErrors) as syntax:
            cases.eval_cases_import(bot=help_bot.bot, text=broken, fmt="json")
        with pytest.raises(cases.ImportErrors) as items:
            cases.eval_cases_import(bot=help_bot.bot, text=bad_item, fmt="json")
    assert syntax.value.lines[0].startswith("Line 4: this is not valid JSON")
    assert items.value.lines == [
        "Line 3: each case must be an object with a question.",
        "Line 4: should_refuse must be yes or no.",
    ]


def test_publishing_without_cases_publishes_at_once_with_a_note(help_bot, world):
    with tenant_context(world.tenant_a):
        version = prompt_version_create(bot=help_bot.bot, text="Be brief.")
        outcome = gate.gate_publish_prompt(bot=help_bot.bot, version=version)
        version.refresh_from_db()
    assert outcome.applied and outcome.run is None and version.is_published
    assert outcome.publication.note == gate.NO_CASES_NOTE


def test_publishing_with_cases_waits_for_the_run_and_publishes_when_the_score_holds(
    help_bot, world, eager_celery, django_capture_on_commit_callbacks
):
    with tenant_context(world.tenant_a):
        _add_cases(help_bot)
        with django_capture_on_commit_callbacks(execute=True):
            baseline = gate.eval_run_create(bot=help_bot.bot)
        version = prompt_version_create(bot=help_bot.bot, text="You are Acme's assistant. Be brief and cite.")
        with django_capture_on_commit_callbacks(execute=True):
            outcome = gate.gate_publish_prompt(bot=help_bot.bot, version=version)
        run = EvalRun.objects.get(pk=outcome.run.pk)
        version.refresh_from_db()
        publication = PromptPublication.objects.filter(bot=help_bot.bot).first()
    assert run.gate == "applied" and run.baseline_id == baseline.pk and run.scores["drop"] == 0.0
    assert version.is_published and publication.eval_run_id == run.pk and publication.score_drop == 0.0
    assert not publication.confirmed_drop


def test_detaching_the_knowledge_needs_confirmation_and_the_drop_is_recorded(
    help_bot, world, eager_celery, django_capture_on_commit_callbacks
):
    with tenant_context(world.tenant_a):
        _add_cases(help_bot)
        with django_capture_on_commit_callbacks(execute=True):
            baseline = gate.eval_run_create(bot=help_bot.bot)
        with django_capture_on_commit_callbacks(execute=True):
            outcome = gate.gate_change_knowledge(bot=help_bot.bot, knowledge_base_ids=[])
        run = EvalRun.objects.get(pk=outcome.run.pk)
        still_attached = help_bot.bot.knowledge_bases.count()
        gate.gate_confirm(run=run)
        run.refresh_from_db()
        attached_after = help_bot.bot.knowledge_bases.count()
    baseline.refresh_from_db()
    assert run.gate == "confirmed" and still_attached == 1 and attached_after == 0
    assert run.scores["drop"] == round(baseline.score - run.score, 1) > help_bot.bot.eval_margin
    assert all(r.refused for r in EvalResult.objects.unscoped().filter(run=run))
