"""The widget designer, t/<tenant_slug>/bots/<bot_id>/widget/: the look with a live preview of the
real widget, allowed origins, the embed and signed-identity snippets, and the install check.

The preview is the real embed.js/panel on this page: it opens its session with a short-lived
preview token (bots.preview) because the dashboard's origin is not one of the bot's allowed
origins, and what is asked there is playground traffic. Members may look; admins save.
"""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.views.decorators.http import require_POST

from tenants.decorators import require_role
from tenants.models import Role

from . import selectors, services
from .models import Bot
from .preview import preview_token_issue
from .widget_forms import WidgetDesignForm


def _bot(bot_id: int) -> Bot:
    return get_object_or_404(Bot.objects, pk=bot_id)


def _is_admin(request: HttpRequest) -> bool:
    # require_role has checked that the middleware set the membership.
    membership = getattr(request, "membership", None)
    return membership is not None and membership.has_role(Role.ADMIN)


def _forbidden(request: HttpRequest) -> HttpResponse:
    return render(request, "tenants/forbidden.html", {"needed_role": "Admin"}, status=403)


@require_role(Role.MEMBER)
def bot_widget(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    bot = _bot(bot_id)
    if request.method == "POST":
        if not _is_admin(request):
            return _forbidden(request)
        form = WidgetDesignForm(request.POST)
        if form.is_valid():
            try:
                services.bot_update(bot=bot, **form.service_fields(current=bot.widget or {}))
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
                bot.refresh_from_db()
            else:
                messages.success(request, "Widget saved. Visitors see the new look on their next page load.")
                return redirect("bot_widget", tenant_slug=tenant_slug, bot_id=bot.pk)
    else:
        form = WidgetDesignForm(initial=WidgetDesignForm.initial_for(bot))
    # The snippet names this very server, as the browser reached it (behind a proxy too).
    own_origin = f"{request.scheme}://{request.get_host()}"
    context = {
        "bot": bot,
        "form": form,
        "is_admin": _is_admin(request),
        "embed_src": request.build_absolute_uri(static("widget/embed.js")),
        "api_origin": own_origin,
        "preview_token": preview_token_issue(bot_public_id=bot.public_id, user_id=cast(int, request.user.pk)),
        "seen": selectors.widget_origins_seen(bot=bot),
        "no_origins": not bot.allowed_origins and not bot.allow_any_origin,
    }
    return render(request, "bots/widget.html", context, status=400 if form.errors else 200)


@require_POST
@require_role(Role.ADMIN)
def bot_widget_origin_allow(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    """Add an origin the install check saw to the bot's allowed origins (one click from the list)."""
    bot = _bot(bot_id)
    origin = request.POST.get("origin", "")
    try:
        services.bot_update(bot=bot, allowed_origins=[*bot.allowed_origins, origin])
    except ValidationError as exc:
        messages.error(request, " ".join(sum(exc.message_dict.values(), [])))
    else:
        messages.success(request, f"{origin} may now show the widget.")
    return redirect("bot_widget", tenant_slug=tenant_slug, bot_id=bot.pk)
