"""The whole workspace: owners download it as a zip and delete it, leaving no row, vector, Redis
key or file behind; nobody else can do either, and other workspaces are untouched."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.db import connection
from django.urls import reverse

from billing.models import Subscription
from bots.models import Bot
from chatbot_saas.errors import AppError
from chatbot_saas.tenant_erasure import tenant_delete
from knowledge.models import Chunk
from tenants.models import Tenant
from tests.bots.factories import PromptVersionFactory
from tests.conversations.factories import ConversationFactory, conversation_with_document, visitor_footprint
from tests.support.residue import redis_keys, rows_mentioning

DOC_CANARY = "Zephyrquill"
VISITOR_CANARY = "Quokkaberry"


@pytest.fixture
def acme_with_data(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    conversation, kb = conversation_with_document(world.tenant_a, text=f"Our {DOC_CANARY} ships in two days.")
    PromptVersionFactory(tenant=world.tenant_a, bot=conversation.bot, number=2, text="Draft about Marmotlily")
    visitor_footprint(conversation.bot, visitor="visitor-acme-1", canary=VISITOR_CANARY)
    # Another workspace's data must survive the deletion.
    visitor_footprint(ConversationFactory(tenant=world.tenant_b).bot, visitor="visitor-bravo-1", canary="Wombatfig")
    return conversation.bot


def _rows_of_tenant(tenant_id: int) -> dict[str, int]:
    left = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name = 'tenant_id'"
        )
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT count(*) FROM "{table}" WHERE tenant_id = %s', [tenant_id])
            count = cursor.fetchone()[0]
            if count:
                left[table] = count
    return left


def test_the_owner_downloads_bots_prompts_documents_conversations_and_settings(world, acme_with_data):
    response = world.client_for(world.alice).get(reverse("workspace_export", args=["acme"]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="acme-')
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = archive.namelist()
    workspace = json.loads(archive.read("workspace.json"))
    assert workspace["slug"] == "acme" and {m["email"] for m in workspace["members"]} == {
        "alice@example.com",
        "bob@example.com",
    }
    bots = json.loads(archive.read("bots.json"))
    assert [b["name"] for b in bots["bots"]] == [acme_with_data.name]
    assert "identity_secret" not in bots["bots"][0]
    assert "Draft about Marmotlily" in {p["text"] for p in bots["prompt_versions"]}
    documents = json.loads(archive.read("documents.json"))
    assert DOC_CANARY in archive.read(documents[0]["file"]).decode()
    conversations = [json.loads(line) for line in archive.read("conversations.jsonl").decode().splitlines()]
    assert any(VISITOR_CANARY in m["content"] for c in conversations for m in c["messages"])
    assert json.loads(archive.read("leads.json"))[0]["question"] == f"Call {VISITOR_CANARY}"
    assert not any("Wombatfig" in archive.read(n).decode(errors="ignore") for n in names)


def test_deleting_the_workspace_leaves_no_row_vector_redis_key_or_file(
    world, acme_with_data, settings, django_capture_on_commit_callbacks
):
    tenant_id, bot_ids = world.tenant_a.pk, [acme_with_data.pk]
    media_files = [p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()]
    assert media_files and Chunk.objects.unscoped().filter(tenant_id=tenant_id).exists()
    assert any("visitor-acme-1" in k for k in redis_keys())

    # Stored files are removed after commit (knowledge_base_delete): run those callbacks, as a commit would.
    with django_capture_on_commit_callbacks(execute=True):
        page = world.client_for(world.alice).post(
            reverse("workspace_delete", args=["acme"]), {"confirm_name": "Acme"}, follow=True
        )

    assert "The workspace “Acme” and all of its data were deleted." in page.content.decode()
    assert not Tenant.objects.filter(pk=tenant_id).exists()
    assert _rows_of_tenant(tenant_id) == {}
    for canary in (DOC_CANARY, VISITOR_CANARY, "Marmotlily", "visitor-acme-1"):
        assert rows_mentioning(canary) == [], canary
    assert [p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()] == []
    keys = redis_keys()
    assert [k for k in keys if "visitor-acme-1" in k] == []
    assert [k for k in keys if k.endswith((f":tenant:{tenant_id}", f"handoff-inbox-{tenant_id}"))] == []
    assert [k for k in keys if any(f":{pk}:" in k or k.endswith(f":bot:{pk}") for pk in bot_ids)] == []
    # Bravo keeps everything.
    assert rows_mentioning("Wombatfig") and any("visitor-bravo-1" in k for k in keys)


def test_a_wrong_name_deletes_nothing_and_says_so_in_place(world, acme_with_data):
    response = world.client_for(world.alice).post(reverse("workspace_delete", args=["acme"]), {"confirm_name": "acme"})
    assert response.status_code == 400
    assert "Type the workspace&#x27;s name exactly as shown" in response.content.decode()
    assert Bot.objects.unscoped().filter(pk=acme_with_data.pk).exists()


def test_a_live_paid_subscription_must_be_cancelled_first(world):
    Subscription.objects.unscoped().filter(tenant=world.tenant_a).update(
        stripe_subscription_id="sub_123", status=Subscription.Status.ACTIVE
    )
    with pytest.raises(AppError) as refused:
        tenant_delete(tenant=world.tenant_a, confirm_name="Acme")
    assert refused.value.code == "subscription_active"
    assert Tenant.objects.filter(pk=world.tenant_a.pk).exists()


@pytest.mark.parametrize("name", ["workspace_export", "workspace_delete"])
def test_only_owners_can_export_or_delete_the_workspace(world, name):
    url = reverse(name, args=["acme"])
    assert world.client_for(world.bob).get(url).status_code == 403  # a member of Acme
    assert world.client_for(world.charlie).get(url).status_code == 404  # not in Acme
    assert world.client_for(world.bob).post(url, {"confirm_name": "Acme"}).status_code in (403, 405)
    assert Tenant.objects.filter(pk=world.tenant_a.pk).exists()
