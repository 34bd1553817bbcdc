"""Create (once) the demo tenant's bot `demo`, attached to the "Demo docs" knowledge base.

Run by `bootstrap_demo` after `bootstrap_demo_knowledge` on every `make run`. Idempotent: an
existing bot is left as its owner configured it; only a missing knowledge-base link and the demo
host page's origins (http://127.0.0.1:$WIDGET_DEMO_PORT, chatbot_saas/demo_host.py) are added, so
the demo page can chat whatever port it runs on. With no provider key set, its chain is the
offline extractive answerer.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from bots import services
from bots.models import Bot
from knowledge.models import KnowledgeBase
from tenants.context import tenant_context
from tenants.models import Tenant

DEMO_BOT_NAME = "demo"
DEMO_KB_NAME = "Demo docs"
DEMO_PROMPT = (
    "You are the assistant of Chatbot SaaS, an open-source multi-tenant chatbot product. Answer questions "
    "about installing, configuring and running it, briefly and precisely, citing the documentation."
)


def demo_origins() -> list[str]:
    """The origins of the demo host page, which `make run` serves on WIDGET_DEMO_PORT."""
    port = settings.WIDGET_DEMO_PORT
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]


class Command(BaseCommand):
    help = "Create the demo tenant's bot 'demo' (idempotent) and attach the 'Demo docs' knowledge base."

    @transaction.atomic
    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.filter(slug=settings.DEMO_TENANT_SLUG).first()
        if tenant is None:
            self.stderr.write("No demo tenant; run bootstrap_demo first.")
            return
        with tenant_context(tenant):
            bot = Bot.objects.filter(name=DEMO_BOT_NAME).first()
            created = bot is None
            if bot is None:
                bot = services.bot_create(
                    tenant=tenant,
                    name=DEMO_BOT_NAME,
                    system_prompt=DEMO_PROMPT,
                    model_chain=services.default_model_chain(),
                    allowed_origins=demo_origins(),
                    welcome_message="Hi! Ask me anything about Chatbot SaaS.",
                    widget={"title": "Chatbot SaaS demo", "position": "right"},
                )
            missing = [origin for origin in demo_origins() if origin not in bot.allowed_origins]
            if missing and not bot.allow_any_origin:
                bot = services.bot_update(bot=bot, allowed_origins=[*bot.allowed_origins, *missing])
            kb = KnowledgeBase.objects.filter(name=DEMO_KB_NAME).first()
            if kb is not None and not bot.knowledge_bases.filter(pk=kb.pk).exists():
                bot.knowledge_bases.add(kb)
        chain = " → ".join(f"{e['provider']}:{e['model']}" for e in bot.model_chain)
        # stderr: bootstrap_demo's stdout (the credentials line) stays identical on every run.
        self.stderr.write(
            f"Demo bot '{bot.name}' ({'created' if created else 'exists'}), public id {bot.public_id}, chain {chain}, "
            f"knowledge base: {kb.name if kb else 'none yet'}."
        )
