"""The demo bootstrap: tenant and owner, and the demo bot answering from Acme Gadgets' help centre."""

from __future__ import annotations

from pathlib import Path

from django.core.management import call_command

from bots.models import Bot
from chatbot_saas.demo_host import SUGGESTED_QUESTIONS
from knowledge.ingestion import document_ingest
from knowledge.management.commands.bootstrap_demo_knowledge import DEMO_KB_NAME, demo_sources
from knowledge.models import Chunk, Document, KnowledgeBase
from knowledge.selectors import chunk_search
from tenants.context import tenant_context
from tenants.models import Membership, Role, Tenant


def test_bootstrap_demo_creates_the_tenant_once_and_prints_credentials(db, settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    call_command("bootstrap_demo")
    first = capsys.readouterr().out
    call_command("bootstrap_demo")
    second = capsys.readouterr().out
    assert Tenant.objects.filter(slug="demo").count() == 1
    owner = Membership.objects.unscoped().get(tenant__slug="demo")
    assert owner.role == Role.OWNER and owner.user.email == "owner@demo.local"
    assert first == second and "owner@demo.local" in first
    password = first.strip().rsplit(" / ", 1)[1]
    assert owner.user.check_password(password)


def test_the_demo_tenant_gets_a_comped_plan_with_every_feature(db, settings, tmp_path):
    from billing.models import Subscription
    from billing.quotas import FEATURES, feature_check

    settings.VAR_DIR = tmp_path
    call_command("bootstrap_demo")
    call_command("bootstrap_demo")  # idempotent: still one subscription, still comped
    demo = Tenant.objects.get(slug="demo")
    subscription = Subscription.objects.unscoped().get(tenant=demo)
    assert subscription.plan.slug == "pro" and subscription.stripe_customer_id == ""
    assert all(getattr(subscription.plan, feature) for feature in FEATURES)
    for feature in FEATURES:
        feature_check(tenant=demo, feature=feature)  # the effective plan too: raises if one is missing


def test_the_demo_bot_answers_from_the_acme_help_centre_in_markdown_pdf_and_html(
    db, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.VAR_DIR = tmp_path
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.OPENAI_API_KEY = settings.ANTHROPIC_API_KEY = ""
    with django_capture_on_commit_callbacks(execute=False):  # ingested below, in this process
        call_command("bootstrap_demo")
    tenant = Tenant.objects.get(slug="demo")
    with tenant_context(tenant):
        kb = KnowledgeBase.objects.get(name=DEMO_KB_NAME)
        assert list(Bot.objects.get(name="demo").knowledge_bases.all()) == [kb]
        documents = list(Document.objects.filter(knowledge_base=kb))
        assert sorted(d.title for d in documents) == sorted(p.name for p in demo_sources())
        assert {Path(d.title).suffix for d in documents} == {".md", ".pdf", ".html"}
        assert not any(d.title.startswith(("README", "docs/")) for d in documents)
        for document in documents:
            document_ingest(document_id=document.pk)
        failed = Document.objects.exclude(status=Document.Status.READY).values_list("title", "error_message")
        assert list(failed) == []

        pdf_pages = set(Chunk.objects.filter(document__title="glow-quick-start.pdf").values_list("page", flat=True))
        assert pdf_pages == {1, 2}
        html_text = " ".join(Chunk.objects.filter(document__title="contact.html").values_list("text", flat=True))
        assert "+31 10 555 0100" in html_text and "<p>" not in html_text and "Privacy · Terms" not in html_text

        expected = dict(zip(SUGGESTED_QUESTIONS, ["shipping.md", "returns.md", "glow-quick-start.pdf"], strict=True))
        for question, title in expected.items():
            passages = chunk_search(tenant=tenant, knowledge_base_ids=[kb.pk], query=question, k=3)
            assert passages[0].document_title == title, (question, [p.document_title for p in passages])
        opening_hours = chunk_search(
            tenant=tenant, knowledge_base_ids=[kb.pk], query="When is your phone line open?", k=3
        )
        assert opening_hours[0].document_title == "contact.html"
