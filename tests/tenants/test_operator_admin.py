"""The operators' admin: every model registered, the tenant page, the tenant actions through the real
admin (a staff superuser POSTing the action), and the audit log they write, which nobody can edit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from billing.models import Plan, Subscription
from billing.quotas import effective_plan
from billing.services import plans_seed, subscription_comp, subscription_start_free
from conversations.models import Conversation, Message, Trace
from knowledge.models import Document
from tenants.context import tenant_context
from tenants.models import ApiKey, AuditEvent, Membership, Role, Tenant
from tenants.selectors import audit_events_for_tenant
from tenants.services import api_key_create, audit_record
from tests.bots.factories import BotFactory
from tests.factories import SCOPED_FACTORIES
from tests.knowledge.factories import DocumentFactory, KnowledgeBaseFactory

TENANTS = "/admin/tenants/tenant/"


@pytest.fixture
def operator(db: None) -> object:
    return get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-op-123")


@pytest.fixture
def op_client(operator: object) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def audit_rows(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_every_model_of_every_app_is_registered_in_admin():
    missing = [m._meta.label for m in apps.get_models() if m not in admin.site._registry]
    assert missing == []


def test_every_admin_list_page_opens_for_an_operator_with_rows_of_several_tenants(op_client, world):
    BotFactory(tenant=world.tenant_a)
    BotFactory(tenant=world.tenant_b)
    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert op_client.get(url).status_code == 200, url
    page = op_client.get("/admin/bots/bot/").content.decode()
    assert "acme" in page and "bravo" in page


def test_the_admin_page_of_a_row_of_every_tenant_owned_model_opens(op_client, world):
    """Each form reads related rows through the unscoped path: a scoped manager would raise here."""
    op_client.raise_request_exception = False
    failing = []
    for model, factory in SCOPED_FACTORIES.items():
        row = factory(tenant=world.tenant_a)
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/{row.pk}/change/"
        if op_client.get(url).status_code != 200:
            failing.append(url)
    assert failing == []
    assert op_client.get(f"{TENANTS}{world.tenant_a.pk}/change/").status_code == 200


def test_a_non_staff_user_cannot_reach_the_admin(world):
    alice = world.client_for(world.alice)
    for url in ["/admin/", TENANTS, "/admin/tenants/auditevent/"]:
        response = alice.get(url)
        assert response.status_code == 302 and "/admin/login/" in response.url, url
    assert alice.post(TENANTS, {"action": "suspend", "_selected_action": [world.tenant_a.pk]}).status_code == 302
    assert Tenant.objects.get(pk=world.tenant_a.pk).is_active


def test_the_tenant_page_shows_plan_usage_bots_knowledge_bases_and_recent_errors(op_client, world):
    plans_seed()
    subscription_start_free(tenant=world.tenant_a)
    bot = BotFactory(tenant=world.tenant_a, name="Helpdesk bot")
    kb = KnowledgeBaseFactory(tenant=world.tenant_a, name="Handbook")
    DocumentFactory(
        tenant=world.tenant_a,
        knowledge_base=kb,
        title="Scanned contract",
        status=Document.Status.FAILED,
        error_code="no_text",
        error_message="The PDF has no text layer.",
    )
    with tenant_context(world.tenant_a):
        conversation = Conversation.objects.create(bot=bot, visitor_id="v-1")
        Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            status=Message.Status.FAILED,
            error_code="provider_down",
        )
        # Answered by the fallback provider after the first one refused: the trace keeps the failure.
        answered = Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT)
        Trace.objects.create(
            message=answered,
            attempts=[
                {
                    "provider": "openai",
                    "model": "gpt-4o",
                    "outcome": "error",
                    "code": "rate_limited",
                    "error": "Slow down",
                },
                {"provider": "anthropic", "model": "claude-haiku", "outcome": "ok"},
            ],
        )
    BotFactory(tenant=world.tenant_b, name="Someone else's bot")

    page = op_client.get(f"{TENANTS}{world.tenant_a.pk}/change/").content.decode()

    assert "Free" in page and "messages this month" in page
    assert "Helpdesk bot" in page and "Handbook" in page
    assert "Scanned contract" in page and "no_text" in page and "provider_down" in page
    assert "openai:gpt-4o" in page and "rate_limited" in page and "Slow down" in page
    assert "claude-haiku" not in page, "a successful attempt is not an error"
    assert "Someone else" not in page


def test_suspending_through_the_admin_refuses_the_dashboard_and_the_api_at_once_and_is_audited(
    op_client, operator, world
):
    subscription_comp(tenant=world.tenant_a, plan_slug="pro")  # the API is a paid feature
    with tenant_context(world.tenant_a):
        _, raw = api_key_create(tenant=world.tenant_a, name="ci")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    alice = world.client_for(world.alice)
    assert api.get("/api/v1/bots").status_code == 200

    op_client.post(TENANTS, {"action": "suspend", "_selected_action": [world.tenant_a.pk]})

    assert alice.get("/t/acme/").status_code == 403
    response = api.get("/api/v1/bots")
    assert response.status_code == 403 and response.json()["error"]["code"] == "tenant_suspended"
    [row] = audit_rows("tenant.suspend")
    assert (row.actor_id, row.is_operator, row.tenant_id, row.target_id) == (
        operator.pk,
        True,
        world.tenant_a.pk,
        str(world.tenant_a.pk),
    )
    assert row.actor_label == "op@example.com" and row.details == {"from": "active"}

    op_client.post(TENANTS, {"action": "reactivate", "_selected_action": [world.tenant_a.pk]})
    assert alice.get("/t/acme/").status_code == 200
    assert api.get("/api/v1/bots").status_code == 200
    assert [r.details for r in audit_rows("tenant.reactivate")] == [{"from": "suspended"}]


def test_comping_a_plan_gives_it_until_the_end_date_then_the_tenant_falls_back(op_client, world):
    plans_seed()
    subscription_start_free(tenant=world.tenant_a)
    pro = Plan.objects.get(slug="pro")
    until = (timezone.now() + timedelta(days=30)).date()

    form = op_client.post(TENANTS, {"action": "comp_plan", "_selected_action": [world.tenant_a.pk]})
    assert form.status_code == 200 and "Comp a plan" in form.content.decode()
    op_client.post(
        TENANTS,
        {
            "action": "comp_plan",
            "apply": "1",
            "_selected_action": [world.tenant_a.pk],
            "plan": pro.pk,
            "until": until.isoformat(),
            "note": "conference partner",
        },
    )

    assert effective_plan(tenant=world.tenant_a).slug == "pro"
    assert effective_plan(tenant=world.tenant_b).slug != "pro"
    [row] = audit_rows("tenant.comp_plan")
    assert row.details == {"plan": "pro", "until": f"{until.isoformat()}T00:00:00+00:00", "note": "conference partner"}

    # The end date passes: the subscription's own plan applies again, with no job to run.
    Subscription.objects.unscoped().filter(tenant=world.tenant_a).update(
        comp_until=timezone.now() - timedelta(seconds=1)
    )
    assert effective_plan(tenant=world.tenant_a).is_default


def test_a_comp_ending_in_the_past_is_refused_and_not_audited(op_client, world):
    plans_seed()
    pro = Plan.objects.get(slug="pro")
    yesterday = (timezone.now() - timedelta(days=1)).date()
    response = op_client.post(
        TENANTS,
        {
            "action": "comp_plan",
            "apply": "1",
            "_selected_action": [world.tenant_a.pk],
            "plan": pro.pk,
            "until": yesterday,
        },
        follow=True,
    )
    assert "A comp needs an end date in the future." in response.content.decode()
    assert not effective_plan(tenant=world.tenant_a).slug == "pro"
    assert audit_rows("tenant.comp_plan") == []


def test_ending_a_comp_through_the_admin_restores_the_plan_at_once(op_client, world):
    plans_seed()
    pro = Plan.objects.get(slug="pro")
    until = (timezone.now() + timedelta(days=7)).date().isoformat()
    op_client.post(
        TENANTS,
        {"action": "comp_plan", "apply": "1", "_selected_action": [world.tenant_a.pk], "plan": pro.pk, "until": until},
    )
    assert effective_plan(tenant=world.tenant_a).slug == "pro"
    op_client.post(TENANTS, {"action": "end_comp", "_selected_action": [world.tenant_a.pk]})
    assert effective_plan(tenant=world.tenant_a).is_default
    assert [r.details for r in audit_rows("tenant.end_comp")] == [{"plan": "pro"}]
    op_client.post(TENANTS, {"action": "end_comp", "_selected_action": [world.tenant_a.pk]})
    assert len(audit_rows("tenant.end_comp")) == 1, "ending no comp changes nothing and is not audited"


def test_the_audit_log_can_be_read_but_not_added_changed_or_deleted_in_admin(op_client, world):
    row = audit_record(action="tenant.suspend", target=world.tenant_a, is_operator=True)
    url = f"/admin/tenants/auditevent/{row.pk}/"

    assert "tenant.suspend" in op_client.get("/admin/tenants/auditevent/").content.decode()
    assert op_client.get(f"{url}change/").status_code == 200  # the read-only view
    assert op_client.get("/admin/tenants/auditevent/add/").status_code == 403
    assert op_client.post(f"{url}change/", {"action": "tenant.reactivate"}).status_code == 403
    assert op_client.post(f"{url}delete/", {"post": "yes"}).status_code == 403
    bulk = op_client.post("/admin/tenants/auditevent/", {"action": "delete_selected", "_selected_action": [row.pk]})
    assert bulk.status_code in (200, 302)
    row.refresh_from_db()
    assert row.action == "tenant.suspend" and AuditEvent.objects.count() == 1


def test_role_changes_and_api_key_creation_and_revocation_are_audited_for_the_tenant(world):
    alice = world.client_for(world.alice)
    with tenant_context(world.tenant_a):
        bob = Membership.objects.get(user=world.bob)
    alice.post(f"/t/acme/members/{bob.pk}/role/", {"role": Role.ADMIN})
    alice.post("/t/acme/api-keys/", {"name": "zapier", "scopes": ["chat"]})
    with tenant_context(world.tenant_a):
        key = ApiKey.objects.get(name="zapier")
    alice.post(f"/t/acme/api-keys/{key.pk}/revoke/")

    rows = audit_events_for_tenant(tenant=world.tenant_a)[::-1]  # oldest first
    assert [r.action for r in rows] == ["member.role_change", "api_key.create", "api_key.revoke"]
    assert all(r.actor_id == world.alice.pk and not r.is_operator for r in rows)
    assert rows[0].details["from"] == "member" and rows[0].details["to"] == "admin"
    assert rows[2].details == {"prefix": key.prefix}
