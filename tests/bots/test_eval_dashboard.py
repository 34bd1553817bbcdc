"""The evaluation pages: admins edit cases, run and decide gates; members look; other tenants get 404."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from bots.evaluation import cases, gate
from bots.models import EvalCase, EvalRun, PromptVersion
from bots.services import prompt_version_create
from conversations.evaluation.runner import eval_run_execute
from conversations.models import Message
from tenants.context import tenant_context
from tests.bots.factories import BotFactory, EvalCaseFactory, EvalRunFactory


def url(name: str, *args: object) -> str:
    return reverse(name, args=args)


@pytest.fixture
def bot_a(world):
    return BotFactory(tenant=world.tenant_a, name="Support")


def test_the_evaluation_page_lists_cases_flags_and_runs(help_bot, world):
    with tenant_context(world.tenant_a):
        cases.eval_case_create(
            bot=help_bot.bot, question="How long is delivery?", document_ids=[help_bot.shipping.pk], keywords=["days"]
        )
        cases.eval_case_create(bot=help_bot.bot, question="Refund?", document_ids=[help_bot.returns.pk], keywords=[])
        help_bot.returns.delete()
    response = world.client_for(world.bob).get(url("eval_page", "acme", help_bot.bot.pk))
    body = response.content.decode()
    assert response.status_code == 200
    assert "How long is delivery?" in body and "Returns <strong>(deleted)</strong>" in body and "flagged" in body
    assert "Run evaluation" not in body  # a member looks, an admin runs


def test_an_owner_adds_a_case_and_a_bad_one_shows_its_error_in_place(help_bot, world):
    client = world.client_for(world.alice)
    page = url("eval_page", "acme", help_bot.bot.pk)
    ok = client.post(
        page,
        {
            "question": "Is shipping free?",
            "expected_documents": [help_bot.shipping.pk],
            "expected_keywords": "free, 50 euros",
        },
    )
    bad = client.post(
        page, {"question": "What is the capital of Australia?", "should_refuse": "on", "expected_keywords": "Canberra"}
    )
    with tenant_context(world.tenant_a):
        saved = list(EvalCase.objects.values_list("question", "expected_keywords"))
    assert ok.status_code == 302 and saved == [("Is shipping free?", ["free", "50 euros"])]
    assert bad.status_code == 400 and "cannot also expect documents or keywords" in bad.content.decode()


def test_running_an_evaluation_without_cases_says_so(bot_a, world):
    response = world.client_for(world.alice).post(url("eval_run_start", "acme", bot_a.pk), follow=True)
    assert "has no evaluation cases yet" in response.content.decode()
    with tenant_context(world.tenant_a):
        assert not EvalRun.objects.exists()


def test_an_owner_runs_the_evaluation_and_sees_scores_per_case(
    help_bot, world, eager_celery, django_capture_on_commit_callbacks
):
    with tenant_context(world.tenant_a):
        cases.eval_case_create(
            bot=help_bot.bot,
            question="How long does delivery take?",
            document_ids=[help_bot.shipping.pk],
            keywords=["working days"],
        )
    client = world.client_for(world.alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("eval_run_start", "acme", help_bot.bot.pk))
    page = client.get(response["Location"])
    with tenant_context(world.tenant_a):
        run = EvalRun.objects.get()
    body = page.content.decode()
    assert run.status == "done" and f"Score {run.score} / 100" in body
    assert "How long does delivery take?" in body and "hit@k: 1.0" in body


def test_a_member_cannot_run_edit_import_or_publish(help_bot, world):
    with tenant_context(world.tenant_a):
        case = EvalCaseFactory(tenant=world.tenant_a, bot=help_bot.bot)
        version = prompt_version_create(bot=help_bot.bot, text="Another prompt.")
    client = world.client_for(world.bob)
    bot_id = help_bot.bot.pk
    refused = [
        client.post(url("eval_run_start", "acme", bot_id)),
        client.post(url("eval_page", "acme", bot_id), {"question": "Sneaky?"}),
        client.post(url("eval_case_edit", "acme", bot_id, case.pk), {"question": "Changed?"}),
        client.post(url("eval_case_delete", "acme", bot_id, case.pk)),
        client.get(url("eval_starters", "acme", bot_id)),
        client.post(url("eval_import", "acme", bot_id), {"format": "json"}),
        client.post(url("prompt_publish", "acme", bot_id, version.pk)),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    with tenant_context(world.tenant_a):
        assert EvalCase.objects.get().question == case.question and not EvalRun.objects.exists()


def test_it_checks_ownership(help_bot, world):
    with tenant_context(world.tenant_a):
        case = EvalCaseFactory(tenant=world.tenant_a, bot=help_bot.bot)
        run = EvalRunFactory(tenant=world.tenant_a, bot=help_bot.bot, gate="needs_confirmation")
    charlie = world.client_for(world.charlie)
    bot_id = help_bot.bot.pk
    for name, args in [
        ("eval_page", ()),
        ("eval_export", ()),
        ("eval_starters", ()),
        ("eval_case_edit", (case.pk,)),
        ("eval_run_detail", (run.pk,)),
    ]:
        assert charlie.get(url(name, "bravo", bot_id, *args)).status_code == 404, name
        assert charlie.get(url(name, "acme", bot_id, *args)).status_code == 404, name
    assert charlie.post(url("eval_run_confirm", "bravo", bot_id, run.pk)).status_code == 404
    run.refresh_from_db()
    assert run.gate == "needs_confirmation"


def test_starter_cases_are_reviewed_edited_and_unticked_before_saving(help_bot, world):
    client = world.client_for(world.alice)
    page = client.get(url("eval_starters", "acme", help_bot.bot.pk))
    body = page.content.decode()
    assert "What should I know about delivery times?" in body
    count = body.count('name="keep_')
    data = {
        "count": str(count),
        "keep_0": "1",
        "question_0": "When will my order arrive?",
        "keywords_0": "working days",
        "document_0": str(help_bot.shipping.pk),
    }
    response = client.post(url("eval_starters", "acme", help_bot.bot.pk), data)  # only the first stays ticked
    with tenant_context(world.tenant_a):
        saved = list(EvalCase.objects.all())
    assert response.status_code == 302 and count > 2
    assert [(c.question, c.expected_keywords, c.expected_documents[0]["title"]) for c in saved] == [
        ("When will my order arrive?", ["working days"], "Shipping")
    ]


def test_an_import_with_errors_shows_them_by_line_and_a_good_one_saves_the_cases(help_bot, world):
    client = world.client_for(world.alice)
    bad = SimpleUploadedFile("cases.csv", b"question,expected_documents\nDelivery?,Shipping\nRefund?,Nope\n")
    response = client.post(url("eval_import", "acme", help_bot.bot.pk), {"format": "csv", "file": bad})
    assert response.status_code == 400
    assert "Line 3: no document titled &#x27;Nope&#x27;" in response.content.decode()
    good = SimpleUploadedFile(
        "cases.json", json.dumps([{"question": "Delivery?", "expected_documents": ["Shipping"]}]).encode()
    )
    response = client.post(url("eval_import", "acme", help_bot.bot.pk), {"format": "json", "file": good})
    exported = client.get(url("eval_export", "acme", help_bot.bot.pk) + "?format=json")
    assert response.status_code == 302
    assert json.loads(exported.content) == [
        {"question": "Delivery?", "expected_documents": ["Shipping"], "expected_keywords": [], "should_refuse": False}
    ]


def test_publishing_a_bot_with_cases_starts_a_gate_run_and_a_bot_without_publishes_at_once(bot_a, help_bot, world):
    client = world.client_for(world.alice)
    with tenant_context(world.tenant_a):
        plain = prompt_version_create(bot=bot_a, text="Plain.")
        EvalCaseFactory(tenant=world.tenant_a, bot=help_bot.bot)
        gated = prompt_version_create(bot=help_bot.bot, text="Gated.")
    direct = client.post(url("prompt_publish", "acme", bot_a.pk, plain.pk), follow=True)
    waiting = client.post(url("prompt_publish", "acme", help_bot.bot.pk, gated.pk))
    with tenant_context(world.tenant_a):
        plain.refresh_from_db()
        gated.refresh_from_db()
        run = EvalRun.objects.get()
    assert plain.is_published and "nothing was checked before publishing" in direct.content.decode()
    assert not gated.is_published and run.gate == "waiting" and run.prompt_version_id == gated.pk
    assert waiting["Location"] == url("eval_run_detail", "acme", help_bot.bot.pk, run.pk)
    assert PromptVersion.objects.unscoped().get(bot=help_bot.bot, is_published=True).number == 1


def test_the_cross_tenant_walk_covers_the_evaluation_routes():
    from tests.support.url_walk import iter_routes

    routes = {route.name: route for route in iter_routes()}
    names = {
        "eval_page",
        "eval_case_edit",
        "eval_case_delete",
        "eval_starters",
        "eval_import",
        "eval_export",
        "eval_run_start",
        "eval_run_detail",
        "eval_run_confirm",
        "eval_run_cancel",
    }
    assert names <= routes.keys()
    assert not any(routes[name].public for name in names)


def test_changing_the_knowledge_bases_of_a_bot_with_cases_waits_for_the_run(help_bot, world):
    with tenant_context(world.tenant_a):
        EvalCaseFactory(tenant=world.tenant_a, bot=help_bot.bot)
    # The editor's knowledge section, every base unticked.
    response = world.client_for(world.alice).post(url("bot_knowledge", "acme", help_bot.bot.pk), {})
    with tenant_context(world.tenant_a):
        help_bot.bot.refresh_from_db()
        run = EvalRun.objects.get()
        attached = help_bot.bot.knowledge_bases.count()
    assert response["Location"] == url("eval_run_detail", "acme", help_bot.bot.pk, run.pk)
    assert attached == 1 and run.purpose == "knowledge" and run.knowledge_base_ids == [] and run.gate == "waiting"


def test_a_superseded_gate_run_is_cancelled_and_spends_no_quota(help_bot, world):
    with tenant_context(world.tenant_a):
        EvalCaseFactory(tenant=world.tenant_a, bot=help_bot.bot)
        first = prompt_version_create(bot=help_bot.bot, text="First candidate.")
        second = prompt_version_create(bot=help_bot.bot, text="Second candidate.")
        old = gate.gate_publish_prompt(bot=help_bot.bot, version=first).run
        new = gate.gate_publish_prompt(bot=help_bot.bot, version=second).run
        eval_run_execute(run_id=old.pk)
        old.refresh_from_db()
        new.refresh_from_db()
        turns = Message.objects.count()
    assert (old.gate, old.status, old.error_code) == ("cancelled", "failed", "eval_cancelled")
    assert new.gate == "waiting" and turns == 0
