"""The bots part of the REST API under /api/v1/ (a Django Ninja router).

Mounted, with authentication and plan checks, in chatbot_saas/api.py. Bots are read through
the tenant scope, so another tenant's bot id is a 404.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Router, Schema

from chatbot_saas.errors import NotFound
from tenants.apiauth import scope_require

from . import selectors

router = Router(tags=["bots"])


class BotOut(Schema):
    id: int
    public_id: str
    name: str
    status: str
    welcome_message: str


@router.get("/bots", response=list[BotOut], summary="List the workspace's bots")
async def bots_list(request: HttpRequest) -> list[Any]:
    scope_require(request.auth, "bots:read")
    return await sync_to_async(lambda: list(selectors.bot_list()))()


@router.get("/bots/{bot_id}", response=BotOut, summary="One bot")
async def bot_detail(request: HttpRequest, bot_id: int) -> Any:
    scope_require(request.auth, "bots:read")
    bot = await sync_to_async(selectors.bot_get)(bot_id=bot_id)
    if bot is None:
        raise NotFound("No such bot.")
    return bot
