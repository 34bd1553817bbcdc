"""Custom branding (a widget without the "Powered by" line) is a plan feature: refused when saved on a
plan without it, and not honoured by the widget once a workspace no longer has it. The bot's own
colour and avatar are its look on every plan."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from billing.services import subscription_comp
from bots import services
from tenants.context import tenant_context
from tests.bots.factories import BotFactory

ORIGIN = "http://127.0.0.1:8001"
LOOK = {"title": "Acme help", "primary_color": "#112233", "avatar_url": "https://acme.test/a.png"}
BRANDED = {**LOOK, "hide_powered_by": True}


def _widget_look(bot) -> dict:
    response = Client().post(
        f"/widget/{bot.public_id}/session",
        data=json.dumps({"visitor_id": "visitor-0001"}),
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
    )
    assert response.status_code == 200, response.content
    return response.json()["bot"]["widget"]


def test_a_free_workspace_cannot_hide_the_powered_by_line_and_is_told_which_plan_can(world):
    subscription_comp(tenant=world.tenant_a, plan_slug="free")
    bot = BotFactory(tenant=world.tenant_a)
    with tenant_context(world.tenant_a), pytest.raises(ValidationError) as refused:
        services.bot_update(bot=bot, widget={"title": "Acme help", "hide_powered_by": True})
    error = refused.value.error_dict["widget"][0]
    assert error.code == "plan_feature_required"
    assert "does not include custom branding. Upgrade to Pro" in error.message
    bot.refresh_from_db()
    assert bot.widget == {}
    with tenant_context(world.tenant_a):
        services.bot_update(bot=bot, widget={**LOOK, "position": "left"})  # the bot's own look: every plan
    bot.refresh_from_db()
    assert bot.widget == {**LOOK, "position": "left"}
    assert _widget_look(bot) == {**LOOK, "position": "left"}


def test_hide_powered_by_must_be_true_or_false(world):
    subscription_comp(tenant=world.tenant_a, plan_slug="pro")
    bot = BotFactory(tenant=world.tenant_a)
    with tenant_context(world.tenant_a), pytest.raises(ValidationError) as refused:
        services.bot_update(bot=bot, widget={"hide_powered_by": "yes"})
    assert "true or false" in refused.value.error_dict["widget"][0].message


def test_a_pro_workspace_brands_its_widget_and_loses_the_branding_when_it_downgrades(world):
    subscription_comp(tenant=world.tenant_a, plan_slug="pro")
    bot = BotFactory(tenant=world.tenant_a)
    with tenant_context(world.tenant_a):
        services.bot_update(bot=bot, widget=BRANDED)
    assert _widget_look(bot) == BRANDED

    subscription_comp(tenant=world.tenant_a, plan_slug="starter")
    assert _widget_look(bot) == LOOK
    # The saved branding does not block saving anything else, and comes back with an upgrade.
    with tenant_context(world.tenant_a):
        services.bot_update(bot=bot, widget={**BRANDED, "position": "left"}, name="Renamed")
    subscription_comp(tenant=world.tenant_a, plan_slug="pro")
    assert _widget_look(bot) == {**BRANDED, "position": "left"}
