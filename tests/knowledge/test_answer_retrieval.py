"""passages_for_answer over the real demo help centre: ingested, searched, re-ranked and gated."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from chatbot_saas.demo_host import SUGGESTED_QUESTIONS
from knowledge.answer_retrieval import passages_for_answer
from knowledge.ingestion import document_ingest
from knowledge.management.commands.bootstrap_demo_knowledge import demo_sources
from knowledge.models import Document
from knowledge.services import document_create_from_upload, knowledge_base_create
from tenants.context import tenant_context

MINILM = "all-MiniLM-L6-v2"

ANSWERABLE = {
    "Can I send back headphones I already opened?": "returns.md",
    "My earphones won't show up in the Bluetooth list, what now?": "troubleshooting-buds.md",
    "What number do I dial to talk to someone?": "contact.html",
}
UNANSWERABLE = [
    "What is the capital of Australia?",
    "How do I bake sourdough bread?",
    "Can you recommend a good laptop for video editing?",
]


@pytest.fixture
def help_centre(db, world, media, django_capture_on_commit_callbacks):
    tenant = world.tenant_a
    with tenant_context(tenant), django_capture_on_commit_callbacks(execute=False):  # ingested here
        kb = knowledge_base_create(tenant=tenant, name="Acme help centre")
        for path in demo_sources():
            document = document_create_from_upload(
                knowledge_base=kb, uploaded_file=ContentFile(path.read_bytes(), name=path.name)
            )
            document_ingest(document_id=document.pk)
        assert not Document.objects.exclude(status=Document.Status.READY).exists()
    return tenant, kb


def test_answerable_questions_keep_their_expected_document_first(help_centre):
    tenant, kb = help_centre
    with tenant_context(tenant):
        for question, title in ANSWERABLE.items():
            decision = passages_for_answer(
                tenant=tenant, knowledge_base_ids=[kb.pk], query=question, k=5, embedding_model=MINILM
            )
            titles = [p.document_title for p in decision.kept]
            assert titles and titles[0] == title, (question, titles)
            assert len(decision.kept) <= 5 and not decision.refused
            dropped = [v for v in decision.verdicts if not v.relevant]
            assert dropped and all(v.reason for v in dropped)  # the trace can say why each one went


def test_the_demo_pages_suggested_questions_are_answered_from_their_article(help_centre):
    tenant, kb = help_centre
    expected = dict(zip(SUGGESTED_QUESTIONS, ["shipping.md", "returns.md", "glow-quick-start.pdf"], strict=True))
    with tenant_context(tenant):
        for question, title in expected.items():
            decision = passages_for_answer(
                tenant=tenant, knowledge_base_ids=[kb.pk], query=question, k=3, embedding_model=MINILM
            )
            assert [p.document_title for p in decision.kept][:1] == [title], (question, decision.verdicts[:3])


def test_unanswerable_questions_keep_nothing_and_every_candidate_says_why(help_centre):
    tenant, kb = help_centre
    with tenant_context(tenant):
        for question in UNANSWERABLE:
            decision = passages_for_answer(
                tenant=tenant, knowledge_base_ids=[kb.pk], query=question, k=5, embedding_model=MINILM
            )
            assert decision.kept == [] and decision.refused, (question, [v.reason for v in decision.verdicts])
            assert decision.verdicts and all(v.reason.startswith("similarity") for v in decision.verdicts)


def test_another_tenants_knowledge_is_never_a_candidate(help_centre, world):
    tenant, kb = help_centre
    with tenant_context(world.tenant_b):
        decision = passages_for_answer(
            tenant=world.tenant_b,
            knowledge_base_ids=[kb.pk],
            query="Can I return opened headphones?",
            k=5,
            embedding_model=MINILM,
        )
    assert decision.kept == [] and decision.verdicts == []
