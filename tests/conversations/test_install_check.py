"""The install check: the widget session endpoint records the origins a bot's widget loads from,
allowed or not, with at most one write per origin every few minutes."""

from __future__ import annotations

import json

from django.test import Client

from bots import services as bot_services
from bots.models import WidgetOrigin
from bots.preview import preview_token_issue
from bots.selectors import widget_origins_seen
from tenants.context import tenant_context
from tests.bots.factories import BotFactory

SHOP = "https://shop.example.com"


def _session(bot, origin, **body):
    return Client().post(
        f"/widget/{bot.public_id}/session",
        data=json.dumps({"visitor_id": "visitor-0001", **body}),
        content_type="application/json",
        HTTP_ORIGIN=origin,
    )


def test_a_widget_loading_from_an_allowed_origin_is_recorded_once_per_few_minutes(world, django_assert_num_queries):
    bot = BotFactory(tenant=world.tenant_a, allowed_origins=[SHOP])
    assert _session(bot, SHOP).status_code == 200
    seen = WidgetOrigin.objects.unscoped().get(bot=bot)
    assert (seen.origin, seen.allowed, seen.tenant_id) == (SHOP, True, world.tenant_a.pk)
    first = seen.last_seen
    # The second load within minutes reads the bot, the history, the plan: and writes nothing.
    assert _session(bot, SHOP).status_code == 200
    seen.refresh_from_db()
    assert seen.last_seen == first
    assert WidgetOrigin.objects.unscoped().filter(bot=bot).count() == 1


def test_a_refused_origin_is_recorded_and_flagged_so_the_admin_can_add_it(world):
    bot = BotFactory(tenant=world.tenant_a, allowed_origins=[SHOP])
    response = _session(bot, "https://blog.example.com")
    assert response.status_code == 403
    with tenant_context(world.tenant_a):
        seen = widget_origins_seen(bot=bot)
    assert [(s.origin, s.allowed) for s in seen] == [("https://blog.example.com", False)]
    # Allowed since: the designer compares with today's list.
    bot.allowed_origins = [SHOP, "https://blog.example.com"]
    bot.save(update_fields=["allowed_origins"])
    with tenant_context(world.tenant_a):
        assert widget_origins_seen(bot=bot)[0].allowed is True


def test_preview_sessions_are_not_an_install(world):
    bot = BotFactory(tenant=world.tenant_a, allowed_origins=[SHOP])
    token = preview_token_issue(bot_public_id=bot.public_id, user_id=world.alice.pk)
    assert _session(bot, "http://testserver", preview=token).status_code == 200
    assert not WidgetOrigin.objects.unscoped().filter(bot=bot).exists()


def test_a_flood_of_made_up_origins_stops_at_the_cap(world, monkeypatch):
    monkeypatch.setattr(bot_services, "MAX_WIDGET_ORIGINS_PER_BOT", 3)
    bot = BotFactory(tenant=world.tenant_a, allowed_origins=[SHOP])
    for n in range(5):
        _session(bot, f"https://forged{n}.example")
    assert WidgetOrigin.objects.unscoped().filter(bot=bot).count() == 3
