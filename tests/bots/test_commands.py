"""The demo bot bootstrap."""

from __future__ import annotations

from django.core.management import call_command

from bots.management.commands.bootstrap_demo_bot import DEMO_ORIGINS
from bots.models import Bot
from tenants.context import tenant_context
from tenants.models import Tenant


def test_bootstrap_demo_bot_creates_the_offline_demo_bot_once_and_attaches_the_help_centre(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.OPENAI_API_KEY = settings.ANTHROPIC_API_KEY = ""
    call_command("bootstrap_demo")  # runs bootstrap_demo_knowledge, then bootstrap_demo_bot
    call_command("bootstrap_demo_bot")
    tenant = Tenant.objects.get(slug="demo")
    with tenant_context(tenant):
        bot = Bot.objects.get(name="demo")
        assert Bot.objects.count() == 1
        assert bot.model_chain == [{"provider": "offline", "model": "extractive", "params": {}}]
        assert bot.allowed_origins == DEMO_ORIGINS
        assert list(bot.knowledge_bases.values_list("name", flat=True)) == ["Acme help centre"]
        assert bot.prompt_versions.get(is_published=True).number == 1


def test_bootstrap_demo_bot_without_the_demo_tenant_does_nothing(db, capsys):
    call_command("bootstrap_demo_bot")
    assert "No demo tenant" in capsys.readouterr().err
    assert not Bot.objects.unscoped().exists()
