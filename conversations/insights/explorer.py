"""The conversations explorer: the messages the filters select, the conversations holding them,
and their export as CSV or JSON Lines, streamed in constant memory.

Filters select messages (full-text search, date range, feedback, unanswered) of conversations
(bot, channel); the page lists the latest conversations holding at least one selected message and
the export has one row per selected message. Tenant scope required: the querysets are built
through the scoped managers while the request's tenant is in context, and only evaluated later by
the streaming response (the tenant filter is part of the SQL by then).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.postgres.search import SearchQuery
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from ..models import NO_ANSWER_MODEL, Conversation, Message, SearchVectorOf
from ..selectors import TEST_CHANNELS
from .forms import ExplorerFilter

LIST_LIMIT = 100
EXPORT_CHUNK = 2000
EXPORT_FIELDS = (
    "conversation_id",
    "message_id",
    "created",
    "bot",
    "channel",
    "visitor",
    "role",
    "content",
    "status",
    "unanswered",
    "feedback",
    "feedback_comment",
    "model",
    "tokens_in",
    "tokens_out",
    "cost",
)


def _conversation_filter(data: dict[str, Any], prefix: str = "") -> Q:
    q = Q()
    if data.get("handed_off"):
        q &= Q(**{f"{prefix}handoff_requested__isnull": False})
    if data.get("bot") is not None:
        q &= Q(**{f"{prefix}bot": data["bot"]})
    channel = data.get("channel") or ""
    if channel == "":
        q &= ~Q(**{f"{prefix}channel__in": TEST_CHANNELS})
    elif channel != "all":
        q &= Q(**{f"{prefix}channel": channel})
    return q


def explorer_messages(*, form: ExplorerFilter) -> QuerySet[Message]:
    """The messages a valid filter selects, oldest first."""
    data = form.cleaned_data
    messages = Message.objects.filter(_conversation_filter(data, prefix="conversation__"))
    if data.get("q"):
        # The expression of the GIN index (conversations_msg_content_fts), so the index serves it.
        query = SearchQuery(data["q"], config="simple", search_type="websearch")
        messages = messages.alias(document=SearchVectorOf("content")).filter(document=query)
    start, end = form.bounds()
    if start:
        messages = messages.filter(created__gte=start)
    if end:
        messages = messages.filter(created__lt=end)
    if data.get("feedback"):
        messages = messages.filter(feedback=data["feedback"])
    if data.get("unanswered"):
        messages = messages.filter(model=NO_ANSWER_MODEL)
    if data.get("corrected"):
        # A matched correction is always the answer's first source (conversations.pipeline.corrections).
        messages = messages.filter(citations__0__has_key="correction_id")
    return messages.order_by("created", "id")


def _is_filtered(data: dict[str, Any]) -> bool:
    return any(data.get(name) for name in ("q", "start", "end", "feedback", "unanswered", "corrected"))


def explorer_conversations(*, form: ExplorerFilter, limit: int = LIST_LIMIT) -> list[Conversation]:
    """The latest `limit` conversations with a selected message, with bot and message count: one query."""
    data = form.cleaned_data
    conversations = Conversation.objects.filter(_conversation_filter(data))
    if _is_filtered(data):
        selected = explorer_messages(form=form).filter(conversation_id=OuterRef("pk")).order_by()
        conversations = conversations.filter(Exists(selected))
    return list(
        conversations.select_related("bot").annotate(message_count=Count("messages")).order_by("-last_active")[:limit]
    )


def _rows(messages: QuerySet[Message]) -> Iterator[dict[str, Any]]:
    values = messages.values_list(
        "conversation_id",
        "id",
        "created",
        "conversation__bot__name",
        "conversation__channel",
        "conversation__visitor_id",
        "conversation__external_user_id",
        "role",
        "content",
        "status",
        "model",
        "feedback",
        "feedback_comment",
        "tokens_in",
        "tokens_out",
        "cost",
    )
    # A server-side cursor: EXPORT_CHUNK rows in memory at a time, whatever the export's size.
    for row in values.iterator(chunk_size=EXPORT_CHUNK):
        (
            conv,
            mid,
            created,
            bot,
            channel,
            visitor,
            external,
            role,
            content,
            status,
            model,
            fb,
            comment,
            t_in,
            t_out,
            cost,
        ) = row
        yield {
            "conversation_id": conv,
            "message_id": mid,
            "created": created.isoformat(),
            "bot": bot,
            "channel": channel,
            "visitor": external or visitor,
            "role": role,
            "content": content,
            "status": status,
            "unanswered": model == NO_ANSWER_MODEL,
            "feedback": fb,
            "feedback_comment": comment,
            "model": model,
            "tokens_in": t_in,
            "tokens_out": t_out,
            "cost": str(cost),
        }


def export_csv(messages: QuerySet[Message]) -> Iterator[str]:
    """CSV lines: the header first (alone when nothing matches), then one line per message."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writeheader()
    yield take()
    for row in _rows(messages):
        # Spreadsheet formula injection: a cell a spreadsheet would run starts with a quote.
        if row["content"][:1] in ("=", "+", "-", "@"):
            row["content"] = "'" + row["content"]
        writer.writerow(row)
        yield take()


def export_jsonl(messages: QuerySet[Message]) -> Iterator[str]:
    """JSON Lines: one object per message (an empty file when nothing matches)."""
    for row in _rows(messages):
        yield json.dumps(row, ensure_ascii=False) + "\n"


EXPORT_BATCH = 500


def _take(lines: Iterator[str], n: int) -> str:
    return "".join(line for _, line in zip(range(n), lines, strict=False))


async def export_stream(lines: Iterator[str]) -> AsyncIterator[str]:
    """`lines` as an async iterator, EXPORT_BATCH lines per chunk. Under ASGI (daphne) Django would
    read a sync iterator into a list first; this reads it in the request's sync thread (the same
    database connection, so the export's server-side cursor stays open) a batch at a time."""
    take = sync_to_async(_take, thread_sensitive=True)
    while chunk := await take(lines, EXPORT_BATCH):
        yield chunk
