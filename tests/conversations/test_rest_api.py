"""The REST API under /api/v1/: API keys with scopes, tenant isolation, JSON turns, feedback, knowledge."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from billing.services import subscription_comp
from conversations.models import Message
from tenants.context import tenant_context
from tenants.services import api_key_create, api_key_revoke, tenant_suspend
from tests.bots.factories import BotFactory
from tests.conversations.factories import ConversationFactory, MessageFactory
from tests.knowledge.factories import KnowledgeBaseFactory

ALL_SCOPES = ["chat", "bots:read", "knowledge:read", "knowledge:write"]


def _key(tenant, scopes=None):
    subscription_comp(tenant=tenant, plan_slug="starter")  # a plan with API access
    with tenant_context(tenant):
        key, raw = api_key_create(tenant=tenant, name="test", scopes=scopes or ALL_SCOPES)
    return key, raw


def _api(raw: str | None) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}") if raw is not None else Client()


def _post(client: Client, url: str, body: object) -> object:
    return client.post(url, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def key_a(world):
    return _key(world.tenant_a)[1]


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Basic abc", "Bearer cbk_deadbeef_x"])
def test_requests_without_a_valid_key_get_invalid_api_key(world, header):
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    response = client.get("/api/v1/bots")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_revoked_keys_and_suspended_tenants_are_refused(world):
    key, raw = _key(world.tenant_a)
    with tenant_context(world.tenant_a):
        api_key_revoke(api_key=key)
    assert _api(raw).get("/api/v1/bots").json()["error"]["code"] == "api_key_revoked"
    _, raw_b = _key(world.tenant_b)
    tenant_suspend(tenant=world.tenant_b)
    response = _api(raw_b).get("/api/v1/bots")
    assert response.status_code == 403 and response.json()["error"]["code"] == "tenant_suspended"


def test_a_key_without_the_scope_gets_missing_scope(world):
    _, raw = _key(world.tenant_a, scopes=["knowledge:read"])
    response = _api(raw).get("/api/v1/bots")
    assert response.status_code == 403 and response.json()["error"]["code"] == "missing_scope"
    conversation = ConversationFactory(tenant=world.tenant_a)
    assert _api(raw).get(f"/api/v1/conversations/{conversation.pk}").status_code == 403


def test_a_key_sees_only_its_own_tenants_bots(world, key_a):
    BotFactory(tenant=world.tenant_a, name="Ours")
    BotFactory(tenant=world.tenant_b, name="Theirs")
    response = _api(key_a).get("/api/v1/bots")
    assert response.status_code == 200
    assert [b["name"] for b in response.json()] == ["Ours"]


def test_a_key_scoped_to_another_tenant_gets_404_for_every_object(world, key_a):
    bot_b = BotFactory(tenant=world.tenant_b)
    conversation_b = ConversationFactory(tenant=world.tenant_b, bot=bot_b)
    message_b = MessageFactory(tenant=world.tenant_b, conversation=conversation_b)
    kb_b = KnowledgeBaseFactory(tenant=world.tenant_b)
    client = _api(key_a)
    assert client.get(f"/api/v1/bots/{bot_b.pk}").status_code == 404
    assert client.get(f"/api/v1/conversations/{conversation_b.pk}").status_code == 404
    assert client.get(f"/api/v1/conversations/{conversation_b.pk}/messages").status_code == 404
    assert _post(client, f"/api/v1/conversations/{conversation_b.pk}/messages", {"text": "hi"}).status_code == 404
    assert _post(client, f"/api/v1/messages/{message_b.pk}/feedback", {"value": "down"}).status_code == 404
    assert client.get(f"/api/v1/knowledge-bases/{kb_b.pk}/documents").status_code == 404
    assert _post(client, "/api/v1/conversations", {"bot_id": bot_b.pk}).status_code == 404
    assert Message.objects.unscoped().get(pk=message_b.pk).feedback == ""


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{oops", "validation_error"),
        (json.dumps({"text": ""}).encode(), "validation_error"),
        (json.dumps({"text": "x" * 30000}).encode(), "validation_error"),
        (json.dumps({"txt": "hi"}).encode(), "validation_error"),
        (json.dumps({"text": "   "}).encode(), "message_empty"),
        (json.dumps({"text": "y" * 5000}).encode(), "message_too_long"),
    ],
)
def test_malformed_message_bodies_get_clear_codes(world, key_a, body, code):
    conversation = ConversationFactory(tenant=world.tenant_a)
    response = _api(key_a).post(
        f"/api/v1/conversations/{conversation.pk}/messages", data=body, content_type="application/json"
    )
    assert response.status_code in (400, 422)
    assert response.json()["error"]["code"] == code
    assert not Message.objects.unscoped().filter(conversation=conversation).exists()


def test_feedback_is_recorded_on_answers_only(world, key_a):
    conversation = ConversationFactory(tenant=world.tenant_a)
    answer = MessageFactory(tenant=world.tenant_a, conversation=conversation)
    question = MessageFactory(tenant=world.tenant_a, conversation=conversation, role=Message.Role.USER)
    client = _api(key_a)
    response = _post(client, f"/api/v1/messages/{answer.pk}/feedback", {"value": "down", "comment": "wrong page"})
    assert response.status_code == 200 and response.json()["feedback"] == "down"
    assert Message.objects.unscoped().get(pk=answer.pk).feedback_comment == "wrong page"
    assert _post(client, f"/api/v1/messages/{question.pk}/feedback", {"value": "up"}).status_code == 404
    assert _post(client, f"/api/v1/messages/{answer.pk}/feedback", {"value": "meh"}).status_code == 422


def test_knowledge_documents_are_listed_and_uploaded(world, key_a, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    kb = KnowledgeBaseFactory(tenant=world.tenant_a)
    client = _api(key_a)
    assert client.get(f"/api/v1/knowledge-bases/{kb.pk}/documents").json() == []
    upload = SimpleUploadedFile("faq.md", b"# FAQ\n\nWe ship worldwide.\n", content_type="text/markdown")
    response = client.post(f"/api/v1/knowledge-bases/{kb.pk}/documents", data={"file": upload})
    assert response.status_code == 201, response.content
    assert response.json()["title"]
    listed = client.get(f"/api/v1/knowledge-bases/{kb.pk}/documents").json()
    assert [d["id"] for d in listed] == [response.json()["id"]]
    missing = client.post(f"/api/v1/knowledge-bases/{kb.pk}/documents", data={})
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "file_missing"
    _, read_only = _key(world.tenant_a, scopes=["knowledge:read"])
    refused = _api(read_only).post(f"/api/v1/knowledge-bases/{kb.pk}/documents", data={"file": upload})
    assert refused.status_code == 403


def test_api_keys_are_rate_limited_with_a_retry_after(world, key_a, settings):
    settings.RATE_LIMIT_API_KEY = "3/60"
    client = _api(key_a)
    statuses = [client.get("/api/v1/bots").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.get("/api/v1/bots")
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused["Retry-After"]) >= 1


def test_the_openapi_schema_and_interactive_docs_are_served(db):
    schema = Client().get("/api/v1/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/api/v1/bots",
        "/api/v1/conversations",
        "/api/v1/conversations/{conversation_id}/messages",
        "/api/v1/messages/{message_id}/feedback",
        "/api/v1/knowledge-bases/{knowledgebase_id}/documents",
    } <= paths
    send = schema["paths"]["/api/v1/conversations/{conversation_id}/messages"]["post"]
    assert "text" in send["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert schema["components"]["securitySchemes"]
    assert Client().get("/api/v1/docs").status_code == 200


def test_a_logged_in_member_can_use_the_api_for_their_own_workspace_only(world):
    BotFactory(tenant=world.tenant_a, name="Ours")
    conversation_b = ConversationFactory(tenant=world.tenant_b)
    alice = world.client_for(world.alice)
    assert [b["name"] for b in alice.get("/api/v1/bots").json()] == ["Ours"]
    assert alice.get(f"/api/v1/conversations/{conversation_b.pk}").status_code == 404
