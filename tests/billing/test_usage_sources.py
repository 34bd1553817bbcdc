"""The counted-usage interface: billing counts bots and documents through counters their apps register."""

from __future__ import annotations

import pytest

from billing.quotas import LIMIT_FIELDS, countable_kinds, current_usage, effective_plan
from billing.selectors import usage_for
from knowledge.models import Document
from knowledge.services import document_create_from_text, knowledge_base_create
from tenants.context import tenant_context
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.usefixtures("plans")


def test_every_limited_kind_is_countable_once_the_apps_have_started(db):
    assert countable_kinds() == list(LIMIT_FIELDS)


def test_bots_and_documents_are_counted_by_their_own_apps_for_each_tenant_alone(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    with tenant_context(world.tenant_a):
        BotFactory(tenant=world.tenant_a, name="one")
        BotFactory(tenant=world.tenant_a, name="two")
        kb = knowledge_base_create(tenant=world.tenant_a, name="Docs")
        document_create_from_text(knowledge_base=kb, title="Guide", text="# Guide\n\nRun make run.\n")
        size = Document.objects.get().size
    with tenant_context(world.tenant_b):
        BotFactory(tenant=world.tenant_b, name="other")

    # Counted from inside another tenant's context on purpose: each counter scopes to the tenant it is given.
    with tenant_context(world.tenant_b):
        usage_a = {
            kind: current_usage(tenant=world.tenant_a, kind=kind) for kind in ("bots", "documents", "storage_bytes")
        }
    usage_b = {kind: current_usage(tenant=world.tenant_b, kind=kind) for kind in ("bots", "documents", "storage_bytes")}

    assert size > 0
    assert usage_a == {"bots": 2, "documents": 1, "storage_bytes": size}
    assert usage_b == {"bots": 1, "documents": 0, "storage_bytes": 0}


def test_the_billing_page_shows_the_counts_the_apps_report(world):
    with tenant_context(world.tenant_a):
        BotFactory(tenant=world.tenant_a, name="one")
    rows = {row.kind: row for row in usage_for(tenant=world.tenant_a, plan=effective_plan(tenant=world.tenant_a))}
    assert set(rows) == set(LIMIT_FIELDS)
    assert rows["bots"].used == 1 and rows["documents"].used == 0
    assert rows["members"].used == 2  # alice and bob
