"""chunk_search: hybrid retrieval through the real pipeline, restricted to one tenant."""

from __future__ import annotations

import pytest

from knowledge.ingestion import document_ingest
from knowledge.models import Document
from knowledge.selectors import chunk_search
from knowledge.services import document_create_from_text
from tenants.context import tenant_context

HANDBOOK = """# Handbook

## Refunds
Customers can request a refund within 30 days of purchase by emailing billing support.
Refunds are paid back to the original card in five business days.

## Passwords
To reset your password, open the login page and click "Forgot password". We email a reset link
that expires after one hour.

## Office
Our office is in Lisbon and the coffee machine is on the third floor.
"""


def ingest_text(tenant, kb, title, text):
    with tenant_context(tenant):
        document = document_create_from_text(knowledge_base=kb, title=title, text=text)
        document_ingest(document_id=document.pk)
        document.refresh_from_db()
    return document


@pytest.fixture
def handbook_a(world, kb_a, media):
    return ingest_text(world.tenant_a, kb_a, "Handbook", HANDBOOK)


def test_a_question_finds_the_passage_that_answers_it_first(world, kb_a, handbook_a):
    assert handbook_a.status == Document.Status.READY
    with tenant_context(world.tenant_a):
        hits = chunk_search(tenant=world.tenant_a, knowledge_base_ids=[kb_a.pk], query="how do I reset my password?")
    assert hits, "expected at least one passage"
    assert "Forgot password" in hits[0].text
    assert hits[0].document_title == "Handbook"
    assert hits[0].heading_path[-1] == "Passwords"
    assert hits[0].snippet and hits[0].score > 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
