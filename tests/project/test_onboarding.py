"""The onboarding checklist on the workspace home: five steps that tick themselves, each linking to
where it is done, folded away once all are done, in a fixed number of queries."""

from __future__ import annotations

import re

from conversations.models import Conversation
from knowledge.models import Document
from tests.bots.factories import BotFactory, WidgetOriginFactory
from tests.conversations.factories import ConversationFactory
from tests.knowledge.factories import DocumentFactory, KnowledgeBaseFactory

STEPS = ["knowledge_base", "document_ready", "bot", "playground", "installed"]


def _done(html: str) -> dict[str, bool]:
    found = dict(re.findall(r'<li data-step="(\w+)" class="(done)?"', html))
    return {step: found.get(step) == "done" for step in STEPS}


def test_a_new_workspace_sees_five_steps_to_do_each_linking_where_it_is_done(world):
    html = world.client_for(world.alice).get("/t/acme/").content.decode()
    assert _done(html) == dict.fromkeys(STEPS, False)
    assert "0 of 5 done" in html
    assert 'href="/t/acme/knowledge/">Create one</a>' in html
    assert 'href="/t/acme/bots/">Create a bot</a>' in html


def test_the_steps_tick_themselves_as_the_workspace_is_set_up(world):
    client = world.client_for(world.alice)
    kb = KnowledgeBaseFactory(tenant=world.tenant_a)
    DocumentFactory(tenant=world.tenant_a, knowledge_base=kb, status=Document.Status.PARSING)
    html = client.get("/t/acme/").content.decode()
    assert _done(html) == {**dict.fromkeys(STEPS, False), "knowledge_base": True}
    assert f'href="/t/acme/knowledge/{kb.pk}/">Upload documents</a>' in html

    DocumentFactory(tenant=world.tenant_a, knowledge_base=kb, status=Document.Status.READY)
    bot = BotFactory(tenant=world.tenant_a)
    # A visitor's conversation is not a try in the playground; a refused origin is not an install.
    ConversationFactory(tenant=world.tenant_a, bot=bot, channel=Conversation.Channel.WIDGET)
    WidgetOriginFactory(tenant=world.tenant_a, bot=bot, allowed=False)
    html = client.get("/t/acme/").content.decode()
    assert _done(html) == {**dict.fromkeys(STEPS, True), "playground": False, "installed": False}
    assert f'href="/t/acme/bots/{bot.pk}/widget/">Get the snippet</a>' in html

    ConversationFactory(tenant=world.tenant_a, bot=bot, channel=Conversation.Channel.PLAYGROUND)
    WidgetOriginFactory(tenant=world.tenant_a, bot=bot, allowed=True)
    html = client.get("/t/acme/").content.decode()
    assert _done(html) == dict.fromkeys(STEPS, True)
    assert "All set: 5 of 5 setup steps done." in html and '<details class="onboarding-done"' in html


def test_another_workspaces_progress_does_not_tick_this_one(world):
    bot = BotFactory(tenant=world.tenant_b)
    WidgetOriginFactory(tenant=world.tenant_b, bot=bot, allowed=True)
    html = world.client_for(world.alice).get("/t/acme/").content.decode()
    assert _done(html) == dict.fromkeys(STEPS, False)


def test_the_home_page_reads_a_fixed_number_of_queries(world, django_assert_num_queries):
    client = world.client_for(world.alice)
    for _ in range(3):
        bot = BotFactory(tenant=world.tenant_a)
        WidgetOriginFactory(tenant=world.tenant_a, bot=bot)
    client.get("/t/acme/")  # the session and plan caches warm up
    with django_assert_num_queries(HOME_QUERIES):
        assert client.get("/t/acme/").status_code == 200


# session, user, tenant and membership (require_role), the sidebar's workspaces, the billing banner,
# the member count, the checklist's five, then the insights overview's eleven (see
# tests/conversations/test_insights_pages.py).
HOME_QUERIES = 22
