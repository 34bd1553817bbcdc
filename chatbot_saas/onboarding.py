"""The workspace home's onboarding checklist: five steps that tick themselves as they happen.

It reads four apps (knowledge, bots, conversations), so it lives here, above them; the home view
(chatbot_saas.home) renders it. Five small queries, whatever the size of the workspace, and the
tenant must be in context (the scoped managers)."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from bots.models import Bot, WidgetOrigin
from conversations.models import Conversation
from knowledge.models import Document, KnowledgeBase
from tenants.models import Tenant


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    done: bool
    url: str
    action: str  # the link's text: where the step is done


@dataclass(frozen=True)
class Checklist:
    steps: list[Step]

    @property
    def done_count(self) -> int:
        return sum(step.done for step in self.steps)

    @property
    def percent(self) -> int:
        return round(100 * self.done_count / len(self.steps))

    @property
    def all_done(self) -> bool:
        return self.done_count == len(self.steps)


def onboarding_checklist(*, tenant: Tenant) -> Checklist:
    slug = tenant.slug
    first_kb = KnowledgeBase.objects.order_by("pk").only("pk").first()
    doc_ready = Document.objects.filter(status=Document.Status.READY).exists()
    first_bot = Bot.objects.order_by("pk").only("pk").first()
    tried = Conversation.objects.filter(channel=Conversation.Channel.PLAYGROUND).exists()
    # Recorded by the widget session endpoint; `allowed` is the verdict when the widget loaded.
    installed = WidgetOrigin.objects.filter(allowed=True).exists()

    bots_url = reverse("bot_list", args=[slug])
    widget_url = reverse("bot_widget", args=[slug, first_bot.pk]) if first_bot else bots_url
    playground_url = reverse("playground", args=[slug]) + (f"?bot={first_bot.pk}" if first_bot else "")
    kb_url = reverse("kb_list", args=[slug])
    docs_url = reverse("kb_detail", args=[slug, first_kb.pk]) if first_kb else kb_url
    return Checklist(
        [
            Step("knowledge_base", "Create a knowledge base", first_kb is not None, kb_url, "Create one"),
            Step(
                "document_ready", "Add a first document and let it get ready", doc_ready, docs_url, "Upload documents"
            ),
            Step("bot", "Create a bot and attach the knowledge base", first_bot is not None, bots_url, "Create a bot"),
            Step("playground", "Try the bot in the playground", tried, playground_url, "Ask it a question"),
            Step("installed", "Paste the snippet into your website", installed, widget_url, "Get the snippet"),
        ]
    )
