"""The widget designer page: the look, welcome text, suggested questions and allowed origins saved
with errors in place, the embed and identity snippets, the install check, and who may do what."""

from __future__ import annotations

import json
import re
from html import unescape

from django.test import Client

from bots.models import Bot
from conversations.access import identity_verify
from tests.bots.factories import BotFactory, WidgetOriginFactory

SHOP = "https://shop.example.com"


def _url(bot: Bot) -> str:
    return f"/t/acme/bots/{bot.pk}/widget/"


def _form(**changes: str) -> dict[str, str]:
    return {
        "widget_primary_color": "#0f766e",
        "widget_title": "Acme help",
        "widget_avatar_url": "",
        "widget_position": "left",
        "widget_launcher_label": "Ask us",
        "widget_scheme": "dark",
        "welcome_message": "Hello! Ask about orders.",
        "widget_suggested_questions": "How long is the warranty?\n\nWhere is my order?",
        "allowed_origins": SHOP,
        **changes,
    }


def _pre(html: str, element_id: str) -> str:
    found = re.search(rf'<(?:pre|code) id="{element_id}">(.*?)</(?:pre|code)>', html, re.S)
    assert found, element_id
    return unescape(found.group(1))


def test_an_admin_saves_the_look_and_the_widget_serves_it(world):
    bot = BotFactory(tenant=world.tenant_a, widget={"hide_powered_by": False, "title": "Old"})
    response = world.client_for(world.alice).post(_url(bot), _form())
    assert response.status_code == 302
    bot.refresh_from_db()
    assert bot.widget == {
        "primary_color": "#0f766e",
        "title": "Acme help",
        "position": "left",
        "launcher_label": "Ask us",
        "scheme": "dark",
        "suggested_questions": ["How long is the warranty?", "Where is my order?"],
    }
    assert bot.welcome_message == "Hello! Ask about orders."
    assert bot.allowed_origins == [SHOP]
    session = Client().post(
        f"/widget/{bot.public_id}/session",
        data=json.dumps({"visitor_id": "visitor-0001"}),
        content_type="application/json",
        HTTP_ORIGIN=SHOP,
    )
    assert session.json()["bot"]["widget"]["suggested_questions"] == ["How long is the warranty?", "Where is my order?"]
    assert session.json()["bot"]["welcome_message"] == "Hello! Ask about orders."


def test_bad_settings_are_shown_beside_their_fields_and_nothing_is_saved(world):
    bot = BotFactory(tenant=world.tenant_a)
    before = (bot.widget, bot.allowed_origins)
    response = world.client_for(world.alice).post(
        _url(bot),
        _form(
            widget_primary_color="red",
            widget_avatar_url="http://127.0.0.1/avatar.png",
            widget_suggested_questions="\n".join(f"Question {n}?" for n in range(7)),
            allowed_origins="shop.example.com/path",
        ),
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert form.errors["widget_primary_color"] == ["The colour must be a hex colour such as #2563eb."]
    assert "The avatar URL is refused" in form.errors["widget_avatar_url"][0]
    assert form.errors["widget_suggested_questions"] == ["At most 6 suggested questions (you gave 7)."]
    assert "is not an origin such as https://www.example.com" in form.errors["allowed_origins"][0]
    bot.refresh_from_db()
    assert (bot.widget, bot.allowed_origins) == before


def test_a_member_sees_the_designer_without_the_secret_or_the_save_button_and_cannot_save(world):
    bot = BotFactory(tenant=world.tenant_a)
    client = world.client_for(world.bob)
    page = client.get(_url(bot)).content.decode()
    assert bot.identity_secret not in page
    assert "Save widget" not in page
    assert "The identity secret is shown to admins only." in page
    assert client.post(_url(bot), _form()).status_code == 403
    allow = client.post(f"/t/acme/bots/{bot.pk}/widget/allow-origin/", {"origin": SHOP})
    assert allow.status_code == 403
    bot.refresh_from_db()
    assert bot.widget == {}


def test_an_empty_origin_list_warns_that_the_widget_serves_nowhere(world):
    bot = BotFactory(tenant=world.tenant_a, allowed_origins=[])
    page = world.client_for(world.alice).get(_url(bot)).content.decode()
    assert "the widget then serves nowhere" in page
    bot.allowed_origins = [SHOP]
    bot.save(update_fields=["allowed_origins"])
    assert "serves nowhere" not in world.client_for(world.alice).get(_url(bot)).content.decode()


def test_the_embed_snippet_names_the_host_the_admin_reached(world, settings):
    settings.ALLOWED_HOSTS = ["chat.example.org"]
    bot = BotFactory(tenant=world.tenant_a)
    page = world.client_for(world.alice).get(_url(bot), HTTP_HOST="chat.example.org").content.decode()
    assert _pre(page, "embed-snippet") == (
        f'<script src="http://chat.example.org/static/widget/embed.js" data-bot="{bot.public_id}" async></script>'
    )


def test_the_python_identity_example_signs_what_the_server_accepts(world, monkeypatch):
    bot = BotFactory(tenant=world.tenant_a)
    page = world.client_for(world.alice).get(_url(bot)).content.decode()
    secret = _pre(page, "identity-secret")
    assert secret == bot.identity_secret
    monkeypatch.setenv("CHAT_IDENTITY_SECRET", secret)
    namespace: dict = {}
    exec(_pre(page, "identity-python"), namespace)
    identity = namespace["chat_identity"]("customer-42")
    assert identity_verify(bot=bot, user_id=identity["id"], signature=identity["hmac"]) == "customer-42"
    session = Client().post(
        f"/widget/{bot.public_id}/session",
        data=json.dumps({"visitor_id": "visitor-0001", "identity": identity}),
        content_type="application/json",
        HTTP_ORIGIN=bot.allowed_origins[0],
    )
    assert session.status_code == 200, session.content


def test_the_install_check_lists_seen_origins_and_an_admin_allows_one_in_a_click(world):
    bot = BotFactory(tenant=world.tenant_a, allowed_origins=[SHOP])
    WidgetOriginFactory(tenant=world.tenant_a, bot=bot, origin=SHOP, allowed=True)
    WidgetOriginFactory(tenant=world.tenant_a, bot=bot, origin="https://blog.example.com", allowed=False)
    client = world.client_for(world.alice)
    page = client.get(_url(bot)).content.decode()
    assert f"Seen on <code>{SHOP}</code>" in page
    assert "Not allowed" in page and "Allow https://blog.example.com" in page
    response = client.post(f"/t/acme/bots/{bot.pk}/widget/allow-origin/", {"origin": "https://blog.example.com"})
    assert response.status_code == 302
    bot.refresh_from_db()
    assert bot.allowed_origins == [SHOP, "https://blog.example.com"]


def test_the_designer_reads_a_fixed_number_of_queries_however_many_origins_were_seen(world, django_assert_num_queries):
    bot = BotFactory(tenant=world.tenant_a)
    client = world.client_for(world.alice)
    client.get(_url(bot))  # the session and plan caches warm up
    for count in (1, 15):
        for _ in range(count):
            WidgetOriginFactory(tenant=world.tenant_a, bot=bot)
        with django_assert_num_queries(DESIGNER_QUERIES):
            assert client.get(_url(bot)).status_code == 200


# session, user, tenant and membership (require_role), the sidebar's workspaces, the bot, the seen origins.
DESIGNER_QUERIES = 7


def test_saving_the_bot_basics_keeps_the_look_set_in_the_designer(world):
    look = {"title": "Acme help", "launcher_label": "Ask us", "suggested_questions": ["Where is my order?"]}
    bot = BotFactory(tenant=world.tenant_a, widget=look)
    response = world.client_for(world.alice).post(
        f"/t/acme/bots/{bot.pk}/",
        {
            "name": bot.name,
            "status": "active",
            "welcome_message": "Hi",
            "suggested_questions": "Where is my order?\nCan I return it?",
        },
    )
    assert response.status_code == 302, response.content
    bot.refresh_from_db()
    assert bot.widget == {
        "title": "Acme help",
        "launcher_label": "Ask us",
        "suggested_questions": ["Where is my order?", "Can I return it?"],
    }


def test_the_designer_refuses_hiding_the_powered_by_line_without_the_pro_plan_and_lets_pro_do_it(world):
    from billing.services import subscription_comp

    subscription_comp(tenant=world.tenant_a, plan_slug="starter")
    bot = BotFactory(tenant=world.tenant_a)
    client = world.client_for(world.alice)
    response = client.post(_url(bot), _form(widget_hide_powered_by="on"))
    assert response.status_code == 400
    assert "does not include custom branding. Upgrade to Pro" in response.content.decode()
    bot.refresh_from_db()
    assert "hide_powered_by" not in bot.widget

    subscription_comp(tenant=world.tenant_a, plan_slug="pro")
    assert client.post(_url(bot), _form(widget_hide_powered_by="on", allow_any_origin="on")).status_code == 302
    bot.refresh_from_db()
    assert bot.widget["hide_powered_by"] is True
    assert bot.allow_any_origin is True
