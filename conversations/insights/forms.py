"""The overview's and the explorer's filters, validated in place (a bad value is a 400 with the
error beside its field, never a 500). Bots are offered through the tenant scope, so another
tenant's bot id is simply not a valid choice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from bots.models import Bot

from ..models import Conversation
from .selectors import RANGES

# The widest date range the explorer and its export accept.
MAX_RANGE_DAYS = 366


class _BotChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.name


def _bot_field() -> _BotChoice:
    return _BotChoice(
        queryset=Bot.objects.unscoped().none(),  # replaced in __init__, inside the tenant scope
        required=False,
        empty_label="All bots",
        error_messages={"invalid_choice": "That bot is not in this workspace. Pick one from the list."},
    )


class OverviewFilter(forms.Form):
    range = forms.TypedChoiceField(
        label="Period",
        choices=[(str(n), f"Last {n} days") for n in RANGES],
        coerce=int,
        required=False,
        empty_value=None,  # the view's default, 30 days
        initial="30",
        error_messages={"invalid_choice": "Pick a period of 7, 30 or 90 days."},
    )
    bot = _bot_field()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["bot"].queryset = Bot.objects.order_by("name")  # type: ignore[attr-defined]


class ExplorerFilter(forms.Form):
    q = forms.CharField(label="Search messages", required=False, max_length=200)
    bot = _bot_field()
    channel = forms.ChoiceField(
        label="Channel",
        required=False,
        choices=[
            ("", "Visitors (widget and API)"),
            (Conversation.Channel.WIDGET, "Widget"),
            (Conversation.Channel.API, "API"),
            (Conversation.Channel.PLAYGROUND, "Playground"),
            ("all", "Every channel"),
        ],
    )
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    feedback = forms.ChoiceField(
        label="Feedback",
        required=False,
        choices=[("", "Any"), ("up", "Thumbs up"), ("down", "Thumbs down")],
    )
    unanswered = forms.BooleanField(label="Only \u201cI don\u2019t know\u201d answers", required=False)
    corrected = forms.BooleanField(label="Only answers from a correction", required=False)
    handed_off = forms.BooleanField(label="Only conversations handed to a person", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["bot"].queryset = Bot.objects.order_by("name")  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start: date | None = data.get("start")
        end: date | None = data.get("end")
        if start and end and start > end:
            self.add_error("end", "The end date is before the start date.")
        elif start and end and (end - start).days >= MAX_RANGE_DAYS:
            self.add_error("end", f"Pick at most {MAX_RANGE_DAYS} days; export longer periods in parts.")
        today = timezone.now().astimezone(UTC).date()
        if start and start > today + timedelta(days=1):
            self.add_error("start", "The start date is in the future.")
        return data

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """The chosen dates as [start, end) instants (UTC), the end day included."""
        start, end = self.cleaned_data.get("start"), self.cleaned_data.get("end")
        begin = datetime.combine(start, datetime.min.time(), tzinfo=UTC) if start else None
        until = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC) if end else None
        return begin, until
