"""The demo bot bootstrap."""

from __future__ import annotations

from django.core.management import call_command

from bots.models import Bot
from tenants.context import tenant_context
from tenants.models import Tenant


def test_bootstrap_demo_bot_creates_the_offline_demo_bot_once_and_attaches_the_help_centre(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.OPENAI_API_KEY = settings.ANTHROPIC_API_KEY = ""
    settings.WIDGET_DEMO_PORT = 8001
    call_command("bootstrap_demo")  # runs bootstrap_demo_knowledge, then bootstrap_demo_bot
    call_command("bootstrap_demo_bot")
    tenant = Tenant.objects.get(slug="demo")
    with tenant_context(tenant):
        bot = Bot.objects.get(name="demo")
        assert Bot.objects.count() == 1
        assert bot.model_chain == [{"provider": "offline", "model": "extractive", "params": {}}]
        assert bot.allowed_origins == ["http://127.0.0.1:8001", "http://localhost:8001"]
        assert list(bot.knowledge_bases.values_list("name", flat=True)) == ["Acme help centre"]
        assert bot.prompt_versions.get(is_published=True).number == 1


def test_the_demo_bot_allows_the_demo_page_on_widget_demo_port_and_keeps_it_when_the_port_changes(
    db, settings, tmp_path
):
    settings.VAR_DIR = tmp_path
    settings.WIDGET_DEMO_PORT = 18601
    call_command("bootstrap_demo")
    settings.WIDGET_DEMO_PORT = 18602  # a later `make run` with another WIDGET_DEMO_PORT
    call_command("bootstrap_demo_bot")
    call_command("bootstrap_demo_bot")
    with tenant_context(Tenant.objects.get(slug="demo")):
        assert Bot.objects.get(name="demo").allowed_origins == [
            "http://127.0.0.1:18601",
            "http://localhost:18601",
            "http://127.0.0.1:18602",
            "http://localhost:18602",
        ]


def test_bootstrap_demo_bot_without_the_demo_tenant_does_nothing(db, capsys):
    call_command("bootstrap_demo_bot")
    assert "No demo tenant" in capsys.readouterr().err
    assert not Bot.objects.unscoped().exists()
