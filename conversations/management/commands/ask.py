"""`manage.py ask --tenant SLUG --bot NAME "question"`: the answer pipeline in a terminal.

Streams the answer as it comes, then prints the citations and one JSON line with the turn's
trace (model, usage, cost, latency, every provider attempt, retrieved chunks, the relevance
gate's verdicts and the query's rewrite, guardrail hits).
Exit status 1 when the turn ended with an error.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import async_to_sync
from django.core.management.base import BaseCommand, CommandError

from bots.models import Bot
from bots.selectors import bot_by_name_or_public_id
from conversations.models import Conversation, Message
from conversations.pipeline.events import Citations, Delta, Done, Error, Reset, Start
from conversations.pipeline.service import answer_stream
from knowledge.selectors import documents_unfinished_count
from tenants.context import tenant_context
from tenants.selectors import tenant_by_slug


class Command(BaseCommand):
    help = "Ask a bot a question and stream its answer, citations and trace."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("question")
        parser.add_argument("--tenant", required=True, help="workspace slug")
        parser.add_argument("--bot", required=True, help="bot name (or public id)")
        parser.add_argument("--conversation", type=int, help="continue this conversation id")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = tenant_by_slug(slug=opts["tenant"])
        if tenant is None:
            raise CommandError(f"No workspace with slug {opts['tenant']!r}.")
        with tenant_context(tenant):
            bot = bot_by_name_or_public_id(ref=opts["bot"])
            if bot is None:
                raise CommandError(f"No bot named {opts['bot']!r} in {tenant.slug}.")
            if opts["conversation"]:
                conversation = Conversation.objects.filter(pk=opts["conversation"], bot=bot).first()
                if conversation is None:
                    raise CommandError(f"No conversation {opts['conversation']} for this bot.")
            else:
                conversation = Conversation.objects.create(bot=bot, channel=Conversation.Channel.CLI, visitor_id="cli")
            # Right after `make run` the worker may still be embedding the demo documents: say so,
            # rather than let an "I don't know" look like the bot's final word.
            unfinished = documents_unfinished_count(
                knowledge_base_ids=list(bot.knowledge_bases.values_list("id", flat=True))
            )
        if unfinished:
            self.stderr.write(
                f"Note: {unfinished} document(s) of this bot's knowledge bases are still being ingested; "
                "this answer cannot use them yet."
            )
        # async_to_sync keeps the pipeline's ORM calls on this thread and its connection.
        failed = async_to_sync(self._stream)(bot, conversation, opts["question"])
        message_id = self._message_id
        if message_id:
            with tenant_context(tenant):
                message = Message.objects.select_related("trace").get(pk=message_id)
            self.stdout.write(json.dumps(_trace_line(message, conversation), default=str))
        if failed:
            raise CommandError(failed)

    async def _stream(self, bot: Bot, conversation: Conversation, question: str) -> str:
        self._message_id = 0
        failed = ""
        async for event in answer_stream(bot=bot, conversation=conversation, user_message=question):
            if isinstance(event, Start):
                self._message_id = event.assistant_message_id
            elif isinstance(event, Delta):
                self.stdout.write(event.text, ending="")
                self.stdout.flush()
            elif isinstance(event, Reset):
                self.stdout.write(f"\n[reset: {event.reason}]\n")
            elif isinstance(event, Citations):
                self.stdout.write("\n\nSources:")
                for item in event.items:
                    page = f", page {item['page']}" if item.get("page") else ""
                    self.stdout.write(
                        f"[{item['n']}] {item['title']}{page}{' ' + item['url'] if item.get('url') else ''}"
                    )
            elif isinstance(event, Done):
                self.stdout.write("")
            elif isinstance(event, Error):
                self.stdout.write(f"\n[{event.code}] {event.message}")
                failed = f"The turn ended with {event.code}."
        return failed


def _trace_line(message: Message, conversation: Conversation) -> dict[str, Any]:
    trace = getattr(message, "trace", None)
    return {
        "conversation_id": conversation.pk,
        "message_id": message.pk,
        "status": message.status,
        "model": message.model,
        "tokens_in": message.tokens_in,
        "tokens_out": message.tokens_out,
        "cost": str(message.cost),
        "latency": message.latency,
        "error_code": message.error_code or None,
        "attempts": trace.attempts if trace else [],
        "retrieved": trace.retrieved if trace else [],
        "retrieval": trace.retrieval if trace else {},
        "guardrail_hits": trace.guardrail_hits if trace else [],
    }
