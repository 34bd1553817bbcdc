"""Create (once) the demo tenant's bot `demo`, attached to the "Acme help centre" knowledge base.

Run by `bootstrap_demo` after `bootstrap_demo_knowledge` on every `make run`. Idempotent: an
existing bot is left as its owner configured it; only a missing knowledge-base link and the demo
host page's origins (http://127.0.0.1:$WIDGET_DEMO_PORT, chatbot_saas/demo_host.py) are added, so
the demo page can chat whatever port it runs on. With no provider key set, its chain is the
offline extractive answerer. The bot plays the assistant of Acme Gadgets, the made-up shop of
the demo host page.
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
DEMO_KB_NAME = "Acme help centre"  # created by knowledge's bootstrap_demo_knowledge
DEMO_PROMPT = (
    "You are the customer service assistant of Acme Gadgets, an online shop for smart home and audio "
    "gadgets. Answer questions about orders, shipping, returns, refunds, warranty, troubleshooting, "
    "Acme Care+ and accounts, briefly and precisely, citing the help centre. When the help centre does "
    "not answer a question, say so and point to support@acme-gadgets.example."
)


def demo_origins() -> list[str]:
    """The origins of the demo host page, which `make run` serves on WIDGET_DEMO_PORT."""
    port = settings.WIDGET_DEMO_PORT
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]


DEMO_CONTACT = "support@acme-gadgets.example or +31 10 555 0100 (Monday to Friday, 9:00 to 18:00 CET)"


class Command(BaseCommand):
    help = "Create the demo tenant's bot 'demo' (idempotent) and attach the 'Acme help centre' knowledge base."

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
                    welcome_message="Hi! I can help with orders, delivery, returns, warranty and your Acme devices.",
                    fallback_message=(
                        "Sorry, I can't answer right now. Our team can help at support@acme-gadgets.example "
                        "or on +31 10 555 0100 (Monday to Friday, 9:00 to 18:00 CET)."
                    ),
                    no_answer_message="Sorry, I don't know the answer to that: it isn't in the Acme help centre.",
                    fallback_contact=DEMO_CONTACT,
                    widget={"title": "Acme Gadgets help", "position": "right"},
                )
            elif not bot.fallback_contact:  # a demo bot created before the field existed
                bot = services.bot_update(bot=bot, fallback_contact=DEMO_CONTACT)
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
