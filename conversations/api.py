"""The REST API under /api/v1/ (Django Ninja), authenticated by tenant API keys with scopes.

Routes that name an object fetch it through the tenant scope *before* reading the request body,
so another tenant's id is a 404 whatever the body holds (the cross-tenant URL walk checks this).
Such routes parse their JSON body with `_body(...)` and declare it in the schema with `_doc(...)`.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, ValidationError
from ninja.security import APIKeyCookie, HttpBearer
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError

from chatbot_saas.errors import AppError, NotFound
from tenants.models import ApiKey

from . import selectors, services
from .apiauth import MemberPrincipal, api_key_request_authenticate, scope_require, session_member_authenticate
from .models import Conversation, Message
from .relay import ERROR_STATUS, AnswerRelay, QueuedTurn


class ApiKeyAuth(HttpBearer):
    async def authenticate(self, request: HttpRequest, token: str) -> ApiKey:
        return await api_key_request_authenticate(request, token=token)


class MemberSessionAuth(APIKeyCookie):
    """The dashboard's session cookie (CSRF-checked for unsafe methods by Ninja)."""

    param_name = settings.SESSION_COOKIE_NAME

    async def authenticate(self, request: HttpRequest, key: str | None) -> MemberPrincipal | None:
        return await session_member_authenticate(request)


api = NinjaAPI(
    title="Chatbot SaaS API",
    version="1",
    description="Tenant API: bots, conversations, messages (JSON or Server-Sent Events), feedback, knowledge. "
    "Authenticate with `Authorization: Bearer cbk_…` (create keys in the dashboard).",
    auth=[ApiKeyAuth(), MemberSessionAuth()],
    urls_namespace="api-v1",
    docs_url="/docs",
)


@api.exception_handler(AppError)
def _app_error(request: HttpRequest, exc: AppError) -> HttpResponse:
    response = JsonResponse(exc.as_dict(), status=exc.status)
    if exc.extra.get("retry_after") is not None:
        response["Retry-After"] = str(max(1, round(exc.extra["retry_after"])))
    return response


@api.exception_handler(AuthenticationError)
def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _app_error(
        request, AppError("Send your API key as 'Authorization: Bearer cbk_...'.", code="invalid_api_key", status=401)
    )


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return _app_error(
        request, AppError("The request is not valid.", code="validation_error", status=422, details=exc.errors)
    )


# --- schemas --------------------------------------------------------------------------------
class BotOut(Schema):
    id: int
    public_id: str
    name: str
    status: str
    welcome_message: str


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


class DocumentOut(Schema):
    id: int
    title: str
    status: str
    created: str | None = None


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


# --- bots -----------------------------------------------------------------------------------
@api.get("/bots", response=list[BotOut], tags=["bots"], summary="List the workspace's bots")
async def bots_list(request: HttpRequest) -> list[Any]:
    scope_require(request.auth, "bots:read")
    return await sync_to_async(selectors.bot_list)()


@api.get("/bots/{bot_id}", response=BotOut, tags=["bots"], summary="One bot")
async def bot_detail(request: HttpRequest, bot_id: int) -> Any:
    scope_require(request.auth, "bots:read")
    bot = await sync_to_async(selectors.bot_get)(bot_id=bot_id)
    if bot is None:
        raise NotFound("No such bot.")
    return bot


# --- conversations and messages ---------------------------------------------------------------
@api.post("/conversations", response={201: ConversationOut}, tags=["conversations"], summary="Start a conversation")
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


@api.get("/conversations/{conversation_id}", response=ConversationOut, tags=["conversations"])
async def conversation_detail(request: HttpRequest, conversation_id: int) -> Any:
    return _conversation_out(await _conversation_or_404(request, conversation_id))


@api.get("/conversations/{conversation_id}/messages", response=list[MessageOut], tags=["conversations"])
async def messages_list(request: HttpRequest, conversation_id: int) -> Any:
    conversation = await _conversation_or_404(request, conversation_id)
    messages = await sync_to_async(selectors.message_list)(conversation=conversation, limit=200)
    return [selectors.message_public(m) for m in messages]


@api.post(
    "/conversations/{conversation_id}/messages",
    response={200: TurnOut},
    tags=["conversations"],
    summary="Send a message; JSON answer, or Server-Sent Events with stream=true",
    description="With `stream: true` (or `Accept: text/event-stream`) the answer streams as SSE events named "
    "after the WebSocket frames: `start`, `delta`, `reset`, `citations`, `end`, `error`.",
    openapi_extra=_doc(MessageIn),
)
async def message_send(request: HttpRequest, conversation_id: int) -> Any:
    conversation = await _conversation_or_404(request, conversation_id)
    payload = _body(request, MessageIn)
    services.chat_text_check(payload.text)
    relay = AnswerRelay(
        bot=conversation.bot,
        tenant=request.tenant,
        conversation=conversation,
        user_message=payload.text,
        channel="api",
        send=None,
    )
    if payload.stream or "text/event-stream" in request.headers.get("Accept", ""):
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


async def _sse(first: list[dict[str, Any]], turn: QueuedTurn) -> Any:
    for frame in first:
        yield _sse_event(frame)
    async for frame in turn.frames():
        yield _sse_event(frame)


def _sse_event(frame: dict[str, Any]) -> str:
    return f"event: {frame['type']}\ndata: {json.dumps(frame, separators=(',', ':'))}\n\n"


@api.post(
    "/messages/{message_id}/feedback",
    response={200: MessageOut},
    tags=["conversations"],
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


# --- knowledge --------------------------------------------------------------------------------
async def _knowledge_base_or_404(knowledgebase_id: int) -> Any:
    from knowledge.models import KnowledgeBase

    kb = await KnowledgeBase.objects.filter(pk=knowledgebase_id).afirst()
    if kb is None:
        raise NotFound("No such knowledge base.")
    return kb


def _document_out(document: Any) -> dict[str, Any]:
    created = getattr(document, "created", None)
    return {
        "id": document.pk,
        "title": getattr(document, "title", "") or "",
        "status": str(getattr(document, "status", "")),
        "created": created.isoformat() if created else None,
    }


@api.get("/knowledge-bases/{knowledgebase_id}/documents", response=list[DocumentOut], tags=["knowledge"])
async def documents_list(request: HttpRequest, knowledgebase_id: int) -> Any:
    scope_require(request.auth, "knowledge:read")
    kb = await _knowledge_base_or_404(knowledgebase_id)
    from knowledge.selectors import document_list_for_kb

    documents = await sync_to_async(lambda: list(document_list_for_kb(knowledge_base=kb)))()
    return [_document_out(d) for d in documents]


class UploadDoc(BaseModel):
    file: bytes = Field(json_schema_extra={"format": "binary"})


@api.post(
    "/knowledge-bases/{knowledgebase_id}/documents",
    response={201: DocumentOut},
    tags=["knowledge"],
    summary="Upload a document (multipart, field `file`); it is ingested in the background",
    openapi_extra=_doc(UploadDoc, "multipart/form-data"),
)
async def document_upload(request: HttpRequest, knowledgebase_id: int) -> Any:
    scope_require(request.auth, "knowledge:write")
    kb = await _knowledge_base_or_404(knowledgebase_id)
    from knowledge.services import document_create_from_upload

    uploaded = request.FILES.get("file")
    if uploaded is None:
        raise AppError("Send the document as a multipart form field named 'file'.", code="file_missing", status=422)
    document = await sync_to_async(document_create_from_upload)(knowledge_base=kb, uploaded_file=uploaded)
    return 201, _document_out(document)
