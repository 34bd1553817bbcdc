"""OpenAI-compatible endpoints: POST /v1/chat/completions and GET /v1/models.

`model` is a bot's public id; auth is a tenant API key with the `chat` scope. The last `user`
message is the question and earlier user/assistant turns become the conversation's history, so
the bot's own memory sees them. System messages are ignored: the bot's published prompt rules.
The answer goes through the full pipeline. Citations ride in an extra top-level `citations`
field (on the response, or on the final chunk when streaming) that standard clients ignore.

The handlers here take the caller's key already admitted: chatbot_saas/api.py mounts them behind
the same authentication, plan check and rate limit as the REST API, and answers a refusal with
`openai_error`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone

from bots.models import Bot
from chatbot_saas.errors import AppError, NotFound
from tenants.apiauth import scope_require
from tenants.models import ApiKey

from . import selectors, services
from .models import Conversation, Message
from .relay import ERROR_STATUS, AnswerRelay, QueuedTurn

MAX_HISTORY_MESSAGES = 50
OPENAI_ERROR_TYPES = {
    401: "authentication_error",
    402: "permission_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def openai_error(exc: AppError) -> JsonResponse:
    """An AppError in the OpenAI error shape ({"error": {"message", "type", "code", ...}})."""
    body = exc.as_dict()
    body["error"]["type"] = OPENAI_ERROR_TYPES.get(exc.status, "invalid_request_error")
    response = JsonResponse(body, status=exc.status)
    if exc.extra.get("retry_after") is not None:
        response["Retry-After"] = str(max(1, round(exc.extra["retry_after"])))
    return response


def _text_of(content: Any) -> str:
    """OpenAI content is a string or a list of parts; only text parts are read."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _parse(request: HttpRequest) -> tuple[str, str, list[tuple[str, str]], bool, bool]:
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        raise AppError("The request body must be JSON.", code="invalid_json") from None
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise AppError("'model' (a bot's public id) is required.", code="invalid_request", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise AppError("'messages' must be a non-empty list of messages.", code="invalid_request", param="messages")
    last = messages[-1]
    if last.get("role") != "user":
        raise AppError("The last message must have role 'user'.", code="invalid_request", param="messages")
    history = [
        (m["role"], _text_of(m.get("content"))[: settings.CHAT_MAX_MESSAGE_CHARS])
        for m in messages[:-1]
        if m.get("role") in ("user", "assistant")
    ][-MAX_HISTORY_MESSAGES:]
    stream_options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
    return (
        body["model"],
        _text_of(last.get("content")),
        history,
        bool(body.get("stream")),
        bool(stream_options.get("include_usage")),
    )


def _conversation_with_history(*, bot: Bot, api_key: Any, history: list[tuple[str, str]]) -> Conversation:
    conversation = services.conversation_start(bot=bot, channel=Conversation.Channel.API, api_key=api_key)
    now = timezone.now()
    Message.objects.bulk_create(
        [
            Message(
                tenant=bot.tenant,
                conversation=conversation,
                role=role,
                content=text,
                status=Message.Status.COMPLETE,
                created=now,
                updated=now,
            )
            for role, text in history
        ]
    )
    return conversation


def _chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"


def _usage(relay_usage: dict[str, int]) -> dict[str, int]:
    prompt, completion = relay_usage.get("tokens_in", 0), relay_usage.get("tokens_out", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _stream(first: list[dict[str, Any]], turn: QueuedTurn, model: str, include_usage: bool) -> Any:
    base = {
        "id": f"chatcmpl-{first[0]['message_id']}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    yield _chunk(base, {"role": "assistant", "content": ""})
    citations: list[dict[str, Any]] = []
    async for frame in _chain(first[1:], turn.frames()):
        kind = frame["type"]
        if kind == "delta":
            yield _chunk(base, {"content": frame["text"]})
        elif kind == "reset":
            # No OpenAI equivalent: mark it, so aware clients can drop the text before it.
            yield _chunk(base, {"content": ""}, chatbot_reset=True)
        elif kind == "citations":
            citations = frame["items"]
        elif kind == "error":
            error = {"message": frame["message"], "type": "api_error", "code": frame["code"]}
            yield f"data: {json.dumps({'error': error})}\n\n"
            return
        elif kind == "end":
            finish = "stop" if frame["status"] == "complete" else "length"
            yield _chunk(base, {}, finish, citations=citations)
            if include_usage:
                usage_chunk = {**base, "choices": [], "usage": _usage(frame.get("usage") or {})}
                yield f"data: {json.dumps(usage_chunk, separators=(',', ':'))}\n\n"
    yield "data: [DONE]\n\n"


async def _chain(head: list[dict[str, Any]], tail: Any) -> Any:
    for frame in head:
        yield frame
    async for frame in tail:
        yield frame


async def chat_completions(request: HttpRequest, *, api_key: ApiKey) -> HttpResponse:
    try:
        scope_require(api_key, "chat")
        model, text, history, stream, include_usage = _parse(request)
        services.chat_text_check(text)
        bot = await sync_to_async(selectors.bot_by_public_id)(public_id=model)
        if bot is None:
            raise NotFound(f"The model '{model[:60]}' does not exist. Use a bot's public id.", code="model_not_found")
        conversation = await sync_to_async(_conversation_with_history)(bot=bot, api_key=api_key, history=history)
        relay = AnswerRelay(
            bot=bot, tenant=api_key.tenant, conversation=conversation, user_message=text, channel="api", send=None
        )
        if stream:
            turn = QueuedTurn(relay)
            first = await turn.first_frames()
            return StreamingHttpResponse(
                _stream(first, turn, model, include_usage),
                content_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        await relay.run_detached()
    except AppError as exc:
        return openai_error(exc)
    if relay.message_id is None or relay.status == Message.Status.FAILED:
        error = relay.error or {"code": "internal_error", "message": "The answer could not be produced."}
        status = ERROR_STATUS.get(error["code"], 400 if relay.message_id is None else 502)
        return openai_error(AppError(error["message"], code=error["code"], status=status))
    return JsonResponse(
        {
            "id": f"chatcmpl-{relay.message_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": relay.text},
                    "finish_reason": "stop" if relay.status == Message.Status.COMPLETE else "length",
                }
            ],
            "usage": _usage(relay.usage),
            "citations": relay.citations,
        }
    )


async def models_list(request: HttpRequest, *, api_key: ApiKey) -> HttpResponse:
    try:
        scope_require(api_key, "chat")
    except AppError as exc:
        return openai_error(exc)
    bots = await sync_to_async(selectors.bot_list)()
    data = [
        {"id": b.public_id, "object": "model", "created": int(b.created.timestamp()), "owned_by": api_key.tenant.slug}
        for b in bots
    ]
    return JsonResponse({"object": "list", "data": data})
