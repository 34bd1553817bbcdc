"""Lead capture: the widget's lead form, checked again here, stored as a `Lead`, emailed to the
team and emitted as `lead.created`. Requires the bot's tenant in context."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings as django_settings
from django.core.mail import send_mail
from django.db import transaction

from bots.models import Bot, HandoffSettings
from chatbot_saas.errors import AppError
from tenants.events import event_emit

from .handoff import agents_of_tenant, handoff_settings_for
from .handoff_bus import bus_send_on_commit, inbox_group
from .models import Conversation, Lead

CUSTOM_FIELD_MAX = 200
QUESTION_MAX = 2000


def lead_form_public(handoff: HandoffSettings) -> dict[str, Any]:
    """The form the widget draws: the same fields and limits the server checks."""
    fields: list[dict[str, Any]] = []
    for key, label, mode, kind, max_length in (
        ("name", "Name", handoff.name_field, "text", 120),
        ("email", "Email", handoff.email_field, "email", 254),
        ("phone", "Phone", handoff.phone_field, "tel", 40),
    ):
        if mode != HandoffSettings.FieldMode.OFF:
            fields.append(
                {"key": key, "label": label, "type": kind, "required": mode == "required", "max_length": max_length}
            )
    for label in handoff.custom_fields or []:
        fields.append({"key": f"custom:{label}", "label": label, "type": "text", "required": False, "max_length": 200})
    return {"when": handoff.lead_when, "fields": fields, "consent_text": handoff.consent_text}


def _lead_form(handoff: HandoffSettings) -> type[forms.Form]:
    attrs: dict[str, forms.Field] = {
        "question": forms.CharField(max_length=QUESTION_MAX, required=False),
        "page_url": forms.CharField(max_length=500, required=False),
    }
    for field in lead_form_public(handoff)["fields"]:
        required, size = field["required"], field["max_length"]
        if field["type"] == "email":
            attrs[field["key"]] = forms.EmailField(max_length=size, required=required)
        elif field["type"] == "tel":
            attrs[field["key"]] = forms.RegexField(
                regex=r"^[0-9+().\- ]{4,40}$", required=required, error_messages={"invalid": "Enter a phone number."}
            )
        else:
            attrs[field["key"]] = forms.CharField(max_length=size, required=required)
    if handoff.consent_text:
        attrs["consent"] = forms.BooleanField(required=True, error_messages={"required": "Please give your consent."})
    return type("LeadForm", (forms.Form,), attrs)


def lead_submit(
    *, bot: Bot, visitor_id: str, conversation_id: int | None, data: Any, reason: Any = Lead.Reason.FORM
) -> Lead:
    """Check the lead form against the bot's settings and store it. Raises AppError `lead_invalid`
    with `fields` ({key: [messages]}) when a field is wrong; `handoff_unavailable` when the bot
    does not collect leads."""
    handoff = handoff_settings_for(bot=bot)
    if handoff is None:
        raise AppError("This assistant does not collect contact details.", code="handoff_unavailable")
    form = _lead_form(handoff)(data if isinstance(data, dict) else {})
    if not form.is_valid():
        fields = {k: [str(e) for e in v] for k, v in form.errors.items()}
        raise AppError("Please check the highlighted fields.", code="lead_invalid", fields=fields)
    clean = form.cleaned_data
    conversation = None
    if conversation_id is not None:
        conversation = Conversation.objects.filter(pk=conversation_id, bot=bot, visitor_id=visitor_id).first()
    lead = Lead.objects.create(
        bot=bot,
        conversation=conversation,
        visitor_id=visitor_id,
        name=clean.get("name") or "",
        email=clean.get("email") or "",
        phone=clean.get("phone") or "",
        fields={k.split(":", 1)[1]: v for k, v in clean.items() if k.startswith("custom:") and v},
        question=clean.get("question") or "",
        consent=bool(clean.get("consent")),
        reason=reason if reason in Lead.Reason.values else Lead.Reason.FORM,
        page_url=clean.get("page_url") or "",
    )
    if conversation is not None:  # the inbox shows the visitor's name and email as soon as they give them
        bus_send_on_commit(inbox_group(bot.tenant_id), {"type": "inbox_changed", "conversation_id": conversation.pk})
    payload = {"lead_id": lead.pk, "bot_id": bot.pk, "conversation_id": conversation.pk if conversation else None}
    transaction.on_commit(lambda: event_emit(name="lead.created", tenant_id=bot.tenant_id, payload=payload))
    recipients = [m.user.email for m in agents_of_tenant() if m.user.email]
    if recipients:
        body = "\n".join(
            [
                f"A visitor of {bot.name} left their details ({lead.get_reason_display().lower()}).",
                f"Name: {lead.name or '-'}",
                f"Email: {lead.email or '-'}",
                f"Phone: {lead.phone or '-'}",
                *(f"{k}: {v}" for k, v in lead.fields.items()),
                "",
                lead.question or "(no question)",
            ]
        )
        subject = f"New lead from {bot.name}"
        transaction.on_commit(
            lambda: send_mail(subject, body, django_settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=True)
        )
    return lead
