from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bots.models import Bot
from knowledge.models import Document
from tests.fakes.fixtures import conversation_a, fake_anthropic, fake_openai, fast_timeouts  # noqa: F401

SHIPPING = (
    "# Shipping\n\n## Delivery times\n\nOrders ship within two working days. Standard delivery takes three to five "
    "working days inside the Netherlands.\n\n## Shipping costs\n\nShipping is free for orders above 50 euros. "
    "Smaller orders pay a flat fee of 4.95 euros.\n"
)
RETURNS = (
    "# Returns\n\n## Return window\n\nYou can return any product within 30 days of delivery for a full refund. "
    "Print the prepaid label from your account.\n\n## Refund timing\n\nRefunds reach your bank within five working "
    "days after the warehouse receives the parcel.\n"
)


@dataclass
class HelpBot:
    bot: Bot
    shipping: Document
    returns: Document


def make_help_bot(tenant: object, name: str = "helper") -> HelpBot:
    """A bot answering offline from two ingested help articles (real chunking and embeddings)."""
    from knowledge.ingestion import document_ingest
    from knowledge.services import document_create_from_text, knowledge_base_create
    from tenants.context import tenant_context
    from tests.bots.factories import BotFactory

    with tenant_context(tenant):
        kb = knowledge_base_create(tenant=tenant, name=f"{name} help")
        docs = [
            document_create_from_text(knowledge_base=kb, title=title, text=text)
            for title, text in (("Shipping", SHIPPING), ("Returns", RETURNS))
        ]
        for document in docs:
            document_ingest(document_id=document.pk)
        bot = BotFactory(tenant=tenant, name=name)
        bot.knowledge_bases.add(kb)
        shipping, returns = (Document.objects.get(pk=d.pk) for d in docs)
    return HelpBot(bot, shipping, returns)


@pytest.fixture
def help_bot(world, settings, tmp_path) -> HelpBot:
    settings.MEDIA_ROOT = tmp_path
    settings.OPENAI_API_KEY = ""
    return make_help_bot(world.tenant_a)


@pytest.fixture
def eager_celery(settings) -> Iterator[None]:
    """Run queued tasks inline (unit tests only; the gate's integration test uses live_worker).

    The Django setting too: with it the pipeline's memory refresh runs inline, instead of from a
    timer thread whose database connection would outlive the test."""
    from chatbot_saas.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False
