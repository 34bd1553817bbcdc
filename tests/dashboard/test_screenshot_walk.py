"""Every dashboard page a workspace has, in a real browser: the walk enumerates the URL patterns
under /t/<slug>/ (tests/support/url_walk.py), so pages added later are visited without new code.
Each GET page answers 200 (or a redirect) without page errors, and is saved at desktop and
mobile widths under test-artifacts/screenshots/walk-<url name>-*.png."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from conversations.models import Message
from tenants.models import Role
from tests.bots.factories import BotFactory
from tests.conversations.factories import ConversationFactory, MessageFactory
from tests.dashboard.conftest import shots
from tests.factories import SCOPED_FACTORIES, MembershipFactory, TenantFactory, UserFactory
from tests.knowledge.factories import DocumentFactory, KnowledgeBaseFactory
from tests.support.url_walk import iter_routes, scoped_models

pytestmark = [pytest.mark.browser]

WORKSPACE_PREFIX = "t/<slug:tenant_slug>/"


def seed_workspace(tenant) -> dict[type, object]:
    """A knowledge base with a ready document, a bot on it, a conversation; then one object of every
    other tenant-owned model, tied to these where it has a foreign key to them (so nested URLs such
    as a bot's prompt version resolve)."""
    kb = KnowledgeBaseFactory(tenant=tenant, name="Help centre")
    document = DocumentFactory(tenant=tenant, knowledge_base=kb, title="Warranty terms")
    bot = BotFactory(tenant=tenant, name="Support bot")
    bot.knowledge_bases.add(kb)
    # Handed to a person and waiting, so the inbox's pages have it too.
    conversation = ConversationFactory(
        tenant=tenant, bot=bot, handoff_status="waiting", handoff_requested=timezone.now()
    )
    MessageFactory(
        tenant=tenant, conversation=conversation, role=Message.Role.USER, content="How long is the warranty?"
    )
    answer = MessageFactory(tenant=tenant, conversation=conversation, content="Two years [1].")
    objects: dict[type, object] = {type(o): o for o in (kb, document, bot, conversation, answer)}
    pending = [m for m in SCOPED_FACTORIES if m not in objects]
    for _ in range(len(pending) + 1):
        for model in list(pending):
            relations = [f for f in model._meta.fields if f.is_relation and f.name != "tenant"]
            needed = [f for f in relations if f.related_model in SCOPED_FACTORIES]
            if any(f.related_model not in objects for f in needed):
                continue  # after the objects it points at
            links = {f.name: objects[f.related_model] for f in needed}
            objects[model] = SCOPED_FACTORIES[model](tenant=tenant, **links)
            pending.remove(model)
    return objects


def workspace_pages(tenant, objects: dict[type, object]) -> list[tuple[str, str]]:
    """(url name, path) of every route under /t/<slug>/ whose kwargs this workspace can fill."""
    models = scoped_models()
    pages = []
    for route in iter_routes():
        if not route.template.startswith(WORKSPACE_PREFIX):
            continue
        values = {"tenant_slug": tenant.slug}
        for kwarg in route.kwargs[1:]:
            for suffix, attr in (("_public_id", "public_id"), ("_id", "pk")):
                model = models.get(kwarg.removesuffix(suffix)) if kwarg.endswith(suffix) else None
                if model is not None and model in objects:
                    values[kwarg] = getattr(objects[model], attr)
                    break
        if set(values) == set(route.kwargs):
            pages.append((route.name or route.template, route.fill(values)))
    return pages


def test_every_workspace_page_renders_for_its_owner_and_is_screenshotted(transactional_db, signed_in, live_daphne):
    owner = UserFactory(username="olga", email="olga@example.com")
    tenant = TenantFactory(name="Acme", slug="acme")
    MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    objects = seed_workspace(tenant)
    pages = workspace_pages(tenant, objects)
    assert {"tenant_home", "bot_list", "bot_detail", "bot_widget", "kb_list", "kb_detail"} <= {n for n, _ in pages}

    client = Client()
    client.force_login(owner)
    page = signed_in(owner)
    visited, statuses = [], {}
    for name, path in pages:
        response = client.get(path)
        statuses[name] = response.status_code
        # Actions (POST only), downloads and JSON feeds are not pages to look at.
        if response.status_code != 200 or not response.get("Content-Type", "").startswith("text/html"):
            continue
        answer = page.goto(live_daphne + path)
        assert answer is not None and answer.status == 200, (name, path, answer and answer.status)
        shots(page, f"walk-{name}")
        visited.append(name)
    refused = {name: status for name, status in statuses.items() if status not in (200, 301, 302, 405)}
    assert refused == {}
    assert page.errors == []
    assert "bot_widget" in visited and "tenant_home" in visited
