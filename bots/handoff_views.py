"""The bot editor's Handoff section (human handoff and lead capture). Admins edit, members look;
another workspace's bot is a 404 (fetched through the tenant scope)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from tenants.decorators import require_role
from tenants.models import Role

from .editor_views import _bot, _forbidden, _section, can_edit
from .handoff_forms import HandoffForm
from .models import HandoffSettings
from .services import handoff_settings_save


@require_role(Role.MEMBER)
def bot_handoff(request: HttpRequest, tenant_slug: str, bot_id: int) -> HttpResponse:
    bot = _bot(bot_id)
    current = HandoffSettings.objects.filter(bot=bot).first() or HandoffSettings(bot=bot)
    if request.method == "POST":
        if not can_edit(request):
            return _forbidden(request)
        form = HandoffForm(request.POST, instance=current)
        if form.is_valid():
            handoff_settings_save(bot=bot, form=form)
            messages.success(request, "Handoff settings saved.")
            return redirect("bot_handoff", tenant_slug=tenant_slug, bot_id=bot.pk)
    else:
        form = HandoffForm(instance=current)
    return _section(request, "bots/editor_handoff.html", bot, "handoff", invalid=bool(form.errors), form=form)
