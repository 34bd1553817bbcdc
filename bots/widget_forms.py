"""The widget designer's form. It parses text into Python values; bots.services validates them
(bots.validation.check_widget_look), and its errors come back keyed by these field names."""

from __future__ import annotations

from typing import Any

from django import forms

from .models import Bot

# The look keys this form edits; any other key saved on the bot is kept.
DESIGNER_LOOK_KEYS = ("primary_color", "title", "avatar_url", "position", "launcher_label", "scheme", "hide_powered_by")
DEFAULT_COLOR = "#2563eb"


def _look(key: str, **attrs: Any) -> dict[str, Any]:
    # widget_designer.js reads every [data-look] field into ChatWidget.preview() as it changes.
    return {"data-look": key, **attrs}


class WidgetDesignForm(forms.Form):
    widget_primary_color = forms.CharField(
        label="Primary colour",
        max_length=7,
        widget=forms.TextInput(attrs=_look("primary_color", type="color")),
        help_text="The launcher, the header and the visitor's messages.",
    )
    widget_title = forms.CharField(
        label="Title", max_length=80, required=False, widget=forms.TextInput(attrs=_look("title"))
    )
    widget_avatar_url = forms.CharField(
        label="Avatar URL",
        max_length=500,
        required=False,
        widget=forms.URLInput(attrs=_look("avatar_url", placeholder="https://…")),
        help_text="A square image on the public internet, shown beside the title.",
    )
    widget_position = forms.ChoiceField(
        label="Position",
        choices=[("right", "Bottom right"), ("left", "Bottom left")],
        widget=forms.Select(attrs=_look("position")),
    )
    widget_launcher_label = forms.CharField(
        label="Launcher label",
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs=_look("launcher_label", placeholder="Ask us")),
        help_text="Text beside the chat icon. Leave empty for a round icon button.",
    )
    widget_scheme = forms.ChoiceField(
        label="Theme",
        choices=[("auto", "Follow the visitor's system"), ("light", "Light"), ("dark", "Dark")],
        widget=forms.Select(attrs=_look("scheme")),
    )
    widget_hide_powered_by = forms.BooleanField(
        label="Hide the “Powered by” line",
        required=False,
        help_text="Custom branding: included in the Pro plan.",
    )
    welcome_message = forms.CharField(
        label="Welcome text",
        max_length=500,
        widget=forms.Textarea(attrs=_look("welcome_message", rows=2)),
    )
    widget_suggested_questions = forms.CharField(
        label="Suggested questions",
        required=False,
        widget=forms.Textarea(attrs=_look("suggested_questions", rows=4)),
        help_text="One per line, at most 6. Visitors send one with a click.",
    )
    allowed_origins = forms.CharField(
        label="Allowed origins",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://www.example.com"}),
        help_text="The websites that may show this widget, one per line, such as https://www.example.com.",
    )
    allow_any_origin = forms.BooleanField(
        label="Allow any website",
        required=False,
        help_text="Serve the widget on every site, whatever the list above says. Anyone can then embed your bot.",
    )

    @classmethod
    def initial_for(cls, bot: Bot) -> dict[str, Any]:
        look = bot.widget or {}
        return {
            "widget_primary_color": look.get("primary_color") or DEFAULT_COLOR,
            "widget_title": look.get("title", ""),
            "widget_avatar_url": look.get("avatar_url", ""),
            "widget_position": look.get("position", "right"),
            "widget_launcher_label": look.get("launcher_label", ""),
            "widget_scheme": look.get("scheme", "auto"),
            "widget_hide_powered_by": bool(look.get("hide_powered_by")),
            "welcome_message": bot.welcome_message,
            "widget_suggested_questions": "\n".join(look.get("suggested_questions", [])),
            "allowed_origins": "\n".join(bot.allowed_origins or []),
            "allow_any_origin": bot.allow_any_origin,
        }

    def service_fields(self, *, current: dict[str, Any]) -> dict[str, Any]:
        """bot_update's keyword arguments; look keys this form does not edit are kept from `current`."""
        data = self.cleaned_data
        look = {k: v for k, v in current.items() if k not in DESIGNER_LOOK_KEYS and k != "suggested_questions"}
        look.update({key: data[f"widget_{key}"] for key in DESIGNER_LOOK_KEYS})
        look["suggested_questions"] = data["widget_suggested_questions"]
        origins = [line.strip() for line in data["allowed_origins"].splitlines() if line.strip()]
        return {
            "widget": look,
            "welcome_message": data["welcome_message"].strip(),
            "allowed_origins": origins,
            "allow_any_origin": data["allow_any_origin"],
        }
