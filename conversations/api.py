"""The conversations part of the REST API under /api/v1/ (a Django Ninja router).

Mounted, with authentication and plan checks, in chatbot_saas/api.py. Routes that name an
object fetch it through the tenant scope *before* reading the request body, so another tenant's
id is a 404 whatever the body holds (the cross-tenant URL walk checks this). Such routes parse
their JSON body with `_body(...)` and declare it in the schema with `_doc(...)`.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Router, Schema
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError

from chatbot_saas.errors import AppError, NotFound
from tenants.apiauth import scope_require
from tenants.models import ApiKey

from . import selectors, services
from .admission import admission_gate
from .idempotency import idempotency_key_check, turn_for_idempotency_key
from .models import Conversation, Message
from .relay import ERROR_STATUS, AnswerRelay, QueuedTurn
from .streams import stream_exists, stream_follow

router = Router(tags=["conversations"])


# --- schemas --------------------------------------------------------------------------------
class ConversationIn(Schema):
    bot_id: int
    external_user_id: str = Field("", max_length=200)


class ConversationOut(Schema):
    id: int
    bot_id: int
    channel: str
    started: str
    last_active: str


class CitationOut(Schema):
    n: int | None = None
    title: str = ""
    page: int | None = None
    url: str | None = None
    snippet: str = ""
    document_id: int | None = None


class MessageOut(Schema):
    id: int
    role: str
    content: str
    status: str
    citations: list[CitationOut]
    feedback: str | None = None
    created: str


class MessageIn(BaseModel):
    text: str = Field(min_length=1, max_length=20000)
    stream: bool = False


class TurnOut(Schema):
    conversation_id: int
    user_message_id: int | None
    message: MessageOut
    usage: dict[str, int]
    error: dict[str, str] | None = None


class FeedbackIn(BaseModel):
    value: str = Field(pattern="^(up|down)$")
    comment: str = Field("", max_length=2000)


def _doc(model: type[BaseModel], content_type: str = "application/json") -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {content_type: {"schema": model.model_json_schema()}}}}


def _body(request: HttpRequest, model: type[BaseModel]) -> Any:
    try:
        data = json.loads(request.body or b"null")
        return model.model_validate(data)
    except (ValueError, PydanticValidationError) as exc:
        details = exc.errors(include_url=False, include_input=False) if isinstance(exc, PydanticValidationError) else []
        raise AppError(
            "The request body must be JSON matching the documented schema.",
            code="validation_error",
            status=422,
            details=json.loads(json.dumps(details, default=str)),
        ) from None


def _conversation_out(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.pk,
        "bot_id": conversation.bot_id,
        "channel": conversation.channel,
        "started": conversation.started.isoformat(),
        "last_active": conversation.last_active.isoformat(),
    }


async def _conversation_or_404(request: HttpRequest, conversation_id: int) -> Conversation:
    scope_require(request.auth, "chat")
    conversation = await sync_to_async(selectors.conversation_get)(conversation_id=conversation_id)
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


# --- conversations and messages ---------------------------------------------------------------
@router.post("/conversations", response={201: ConversationOut}, summary="Start a conversation")
async def conversation_create(request: HttpRequest, payload: ConversationIn) -> Any:
    scope_require(request.auth, "chat")
    bot = await sync_to_async(selectors.bot_get)(bot_id=payload.bot_id)
    if bot is None:
        raise NotFound("No such bot.")
    conversation = await sync_to_async(services.conversation_start)(
        bot=bot,
        channel=Conversation.Channel.API,
        external_user_id=payload.external_user_id,
        api_key=request.auth if isinstance(request.auth, ApiKey) else None,
    )
    return 201, _conversation_out(conversation)


@router.get("/conversations/{conversation_id}", response=ConversationOut)
async def conversation_detail(request: HttpRequest, conversation_id: int) -> Any:
    return _conversation_out(await _conversation_or_404(request, conversation_id))


@router.get("/conversations/{conversation_id}/messages", response=list[MessageOut])
async def messages_list(request: HttpRequest, conversation_id: int) -> Any:
    conversation = await _conversation_or_404(request, conversation_id)
    messages = await sync_to_async(selectors.message_list)(conversation=conversation, limit=200)
    return [selectors.message_public(m) for m in messages]


@router.post(
    "/conversations/{conversation_id}/messages",
    response={200: TurnOut},
    summary="Send a message; JSON answer, or Server-Sent Events with stream=true",
    description="With `stream: true` (or `Accept: text/event-stream`) the answer streams as SSE events named "
    "after the WebSocket frames: `start`, `delta`, `reset`, `citations`, `end`, `error`.",
    openapi_extra=_doc(MessageIn),
)
async def message_send(request: HttpRequest, conversation_id: int) -> Any:
    conversation = await _conversation_or_404(request, conversation_id)
    payload = _body(request, MessageIn)
    services.chat_text_check(payload.text)
    key = idempotency_key_check(request.headers.get("Idempotency-Key"))
    streaming = payload.stream or "text/event-stream" in request.headers.get("Accept", "")
    release = await admission_gate().admit()  # 503 server_busy past the queue's deadline
    if key is not None:
        try:
            found = await sync_to_async(turn_for_idempotency_key)(key=key, pk=conversation.pk)
        except BaseException:
            release()
            raise
        if found is not None and found[1] is not None:
            release()  # nothing opens: the first send's answer is replayed
            return await _replay(conversation, found[0], found[1], streaming=streaming)
    relay = AnswerRelay(
        bot=conversation.bot,
        tenant=request.tenant,
        conversation=conversation,
        user_message=payload.text,
        channel="api",
        send=None,
        idempotency_key=key,
        on_opened=release,
    )
    if streaming:
        turn = QueuedTurn(relay)
        first = await turn.first_frames()
        return StreamingHttpResponse(
            _sse(first, turn), content_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    await relay.run_detached()
    if relay.message_id is None or (relay.error and relay.error["code"] in ERROR_STATUS):
        error = relay.error or {"code": "internal_error", "message": "The answer could not start. Please retry."}
        raise AppError(error["message"], code=error["code"], status=ERROR_STATUS.get(error["code"], 400))
    message = await sync_to_async(selectors.message_get)(message_id=relay.message_id)
    return {
        "conversation_id": conversation.pk,
        "user_message_id": relay.user_message_id,
        "message": selectors.message_public(message),
        "usage": relay.usage or {"tokens_in": message.tokens_in, "tokens_out": message.tokens_out},
        "error": relay.error,
    }


async def _replay(conversation: Conversation, question: Message, answer: Message, *, streaming: bool) -> Any:
    """A send repeated with its Idempotency-Key: the first send's answer, joined while it streams
    (its frames from the resume buffer) or replayed once settled. No message is stored, no model called."""
    start = {
        "type": "start",
        "message_id": answer.pk,
        "user_message_id": question.pk,
        "conversation_id": conversation.pk,
        "client_id": None,
        "replayed": True,
    }
    frames = _answer_frames(answer)
    if streaming:

        async def events() -> Any:
            yield _sse_event(start)
            async for frame in frames:
                yield _sse_event(frame)

        return StreamingHttpResponse(events(), content_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    async for _frame in frames:
        pass  # wait for the answer to settle
    message = await sync_to_async(selectors.message_get)(message_id=answer.pk) or answer
    return {
        "conversation_id": conversation.pk,
        "user_message_id": question.pk,
        "message": selectors.message_public(message),
        "usage": {"tokens_in": message.tokens_in, "tokens_out": message.tokens_out},
        "error": {"code": message.error_code, "message": ""} if message.error_code else None,
    }


async def _answer_frames(answer: Message) -> Any:
    """The answer's numbered frames from the first, until `end`; a settled answer whose buffer
    expired is one `end` frame from the database."""
    if answer.status == Message.Status.STREAMING or await stream_exists(message_id=answer.pk):
        async for frame in stream_follow(message_id=answer.pk, last_seq=0):
            if frame is not None:
                yield frame
                continue
            current = await sync_to_async(selectors.message_get)(message_id=answer.pk)
            if current is None or current.status != Message.Status.STREAMING:
                break
        else:
            return
    current = await sync_to_async(selectors.message_get)(message_id=answer.pk)
    if current is not None:
        yield {
            "type": "end",
            "message_id": current.pk,
            "seq": None,
            "status": current.status,
            "usage": {"tokens_in": current.tokens_in, "tokens_out": current.tokens_out},
            "content": current.content,
            "replayed": True,
        }


async def _sse(first: list[dict[str, Any]], turn: QueuedTurn) -> Any:
    for frame in first:
        yield _sse_event(frame)
    async for frame in turn.frames():
        yield _sse_event(frame)


def _sse_event(frame: dict[str, Any]) -> str:
    return f"event: {frame['type']}\ndata: {json.dumps(frame, separators=(',', ':'))}\n\n"


@router.post(
    "/messages/{message_id}/feedback",
    response={200: MessageOut},
    summary="Rate an answer (up/down, optional comment)",
    openapi_extra=_doc(FeedbackIn),
)
async def message_feedback(request: HttpRequest, message_id: int) -> Any:
    scope_require(request.auth, "chat")
    message = await sync_to_async(selectors.message_get)(message_id=message_id)
    if message is None or message.role != Message.Role.ASSISTANT:
        raise NotFound("No such answer.")
    payload = _body(request, FeedbackIn)
    message = await sync_to_async(services.message_feedback_set)(
        message=message, value=payload.value, comment=payload.comment
    )
    return selectors.message_public(message)
