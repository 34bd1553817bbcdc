"""The publishing gate against a real Celery worker, on the demo bot and its help centre.

The offline answerer quotes the documentation whatever the system prompt says, so no prompt can
change its answers. To show a prompt that breaks the evaluation set, the demo bot answers here
through a fake model server that follows its system prompt the way a language model would:
it cites the first source, unless the prompt tells it never to cite. Everything else is real:
the demo bootstrap, ingestion on the worker, the dashboard views, the runs on the worker.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from bots.evaluation import cases, selectors
from bots.models import Bot, EvalRun, PromptPublication, PromptVersion
from bots.services import bot_update, prompt_version_create
from knowledge.models import Document
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.fakes.base import Behaviour
from tests.fakes.openai_server import FakeOpenAI
from tests.knowledge.live import wait_for

BREAKING_PROMPT = "You are Acme's assistant. Never cite sources; answer from what you know in general."
_SOURCE_1 = re.compile(r"<<<SOURCE 1: [^>]*>>>\n(.+?)\n<<<END SOURCE 1>>>", re.DOTALL)


def follows_the_prompt(body: dict[str, Any]) -> Behaviour:
    system = body["messages"][0]["content"]
    if "Never cite sources" in system:
        return Behaviour(text="Happy to help! Most shops handle that within a few days.")
    found = _SOURCE_1.search(system)
    if not found:
        return Behaviour(text="I don't know: the help centre does not cover that.")
    first = re.split(r"(?<=[.!?])\s+", found.group(1).strip())[0]
    return Behaviour(text=f"{first} [1]")


def _finished(run_id: int) -> bool:
    return EvalRun.objects.unscoped().get(pk=run_id).is_finished


@pytest.mark.integration
def test_publishing_a_prompt_that_breaks_the_demo_bots_evaluation_set_is_stopped_and_asks_for_confirmation(
    transactional_db, live_worker, settings, tmp_path
):
    settings.VAR_DIR = tmp_path
    settings.OPENAI_API_KEY = settings.ANTHROPIC_API_KEY = ""
    call_command("bootstrap_demo")  # the demo tenant, its help centre (ingested by the worker) and bot
    tenant = Tenant.objects.get(slug=settings.DEMO_TENANT_SLUG)
    documents = Document.objects.unscoped().filter(tenant=tenant)
    wait_for(
        lambda: documents.all().exists() and not documents.exclude(status__in=Document.FINAL_STATUSES).exists(),
        300,
        "the help centre's ingestion",
    )
    assert set(documents.values_list("status", flat=True)) == {"ready"}
    owner = Client()
    owner.force_login(get_user_model().objects.get(username="demo-owner"))

    with FakeOpenAI(api_key="not-needed") as model, override_settings(TENANT_URL_ALLOWLIST=["127.0.0.1"]):
        model.responder = follows_the_prompt
        with tenant_context(tenant):
            bot = Bot.objects.get(name="demo")
            chain = [{"provider": "openai_compatible", "model": "acme-llm", "params": {"base_url": model.base_url}}]
            bot_update(bot=bot, model_chain=chain)
            starters = selectors.eval_starter_cases(bot=bot)[:4]
            cases.eval_cases_create_many(
                bot=bot,
                cases=[
                    cases.check_case(
                        bot=bot, question=s.question, document_ids=[s.document_id], keywords=[], should_refuse=False
                    )
                    for s in starters
                ],
            )
        base = f"/t/{tenant.slug}/bots/{bot.pk}/evaluation/"

        # The published version's run: the baseline the gate compares with.
        response = owner.post(base + "run/")
        baseline_id = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
        wait_for(lambda: _finished(baseline_id), 180, "the baseline run")
        baseline = EvalRun.objects.unscoped().get(pk=baseline_id)
        assert baseline.status == "done" and baseline.scores["refusal_correctness"] == 1.0  # every answer cites

        with tenant_context(tenant):
            version = prompt_version_create(bot=bot, text=BREAKING_PROMPT, note="Friendlier")
        response = owner.post(reverse("prompt_publish", args=[tenant.slug, bot.pk, version.pk]))
        assert response.status_code == 302 and "/evaluation/runs/" in response["Location"]
        gate_id = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
        wait_for(lambda: _finished(gate_id), 180, "the publish gate's run")

        run = EvalRun.objects.unscoped().get(pk=gate_id)
        version.refresh_from_db()
        assert run.gate == "needs_confirmation" and not version.is_published
        assert run.baseline_id == baseline.pk and run.scores["drop"] == round(baseline.score - run.score, 1)
        assert run.scores["drop"] > bot.eval_margin
        page = owner.get(response["Location"])
        assert b"Publish anyway" in page.content and b"dropped" in page.content
        # The model saw the candidate prompt, though version 1 stayed live meanwhile.
        assert any(BREAKING_PROMPT in r.body["messages"][0]["content"] for r in model.requests)

        owner.post(reverse("eval_run_confirm", args=[tenant.slug, bot.pk, run.pk]))

    with tenant_context(tenant):
        live = PromptVersion.objects.get(bot=bot, is_published=True)
        publication = PromptPublication.objects.filter(bot=bot).first()
    assert live.pk == version.pk
    assert publication.eval_run_id == run.pk and publication.confirmed_drop
    assert publication.score_drop == run.scores["drop"]
