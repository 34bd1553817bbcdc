"""Checks a bot's settings before they are saved: `check_*` functions raise ValidationError
with field errors, so forms, services and the admin refuse the same bad input."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from bots.catalog import MODELS, PROVIDERS
from knowledge.egress import EgressRefused, check_url

MAX_CHAIN = 5
# Parameters a chain entry may carry, with their type and allowed range.
PARAMS: dict[str, tuple[type, float | None, float | None]] = {
    "temperature": (float, 0.0, 2.0),
    "max_tokens": (int, 1, 32_000),
    "top_p": (float, 0.0, 1.0),
    "base_url": (str, None, None),  # openai_compatible only
}
MAX_PROMPT_CHARS = 20_000
MAX_TOPICS = 100


def check_model_chain(chain: Any) -> list[dict[str, Any]]:
    """Return the chain normalised (params filled), or raise ValidationError({"model_chain": ...})."""
    if not isinstance(chain, list) or not chain:
        raise ValidationError({"model_chain": "The model chain needs at least one provider."})
    if len(chain) > MAX_CHAIN:
        raise ValidationError({"model_chain": f"The model chain can have at most {MAX_CHAIN} providers."})
    errors: list[str] = []
    normalised = []
    for position, entry in enumerate(chain, start=1):
        try:
            normalised.append(_check_entry(entry))
        except ValueError as exc:
            errors.append(f"Entry {position}: {exc}")
    if errors:
        raise ValidationError({"model_chain": errors})
    return normalised


# Providers whose models the catalog lists: any other model name there is a typo or a model we
# cannot price. openai_compatible servers name their own models; offline has one.
CATALOGUED_PROVIDERS = ("openai", "anthropic")


def check_catalog_model(provider: str, model: str) -> None:
    """Raise ValidationError({"model": ...}) when an OpenAI or Anthropic model is not in bots.catalog.

    The dashboard's chain editor applies this to every row. check_model_chain does not, so chains
    saved through the API (or before the catalog knew a model) keep working; conversations prices
    an unknown model at 0 with a conservative context window.
    """
    if provider in CATALOGUED_PROVIDERS and (provider, model) not in MODELS:
        known = ", ".join(m for p, m in MODELS if p == provider)
        raise ValidationError({"model": f"{model!r} is not a {provider} model we know. Pick one of: {known}."})


def _check_entry(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ValueError("each entry must be an object with provider, model and params.")
    unknown_keys = set(entry) - {"provider", "model", "params"}
    if unknown_keys:
        raise ValueError(f"unknown keys {sorted(unknown_keys)}.")
    provider = entry.get("provider")
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}.")
    model = entry.get("model")
    if not isinstance(model, str) or not re.fullmatch(r"[\w.:/@+-]{1,120}", model):
        raise ValueError("model must be a model name such as gpt-4o-mini (letters, digits, . : / @ + - _).")
    params = entry.get("params", {}) or {}
    if not isinstance(params, dict):
        raise ValueError("params must be an object.")
    return {"provider": provider, "model": model, "params": _check_params(provider, params)}


def _check_params(provider: str, params: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in params.items():
        if name not in PARAMS:
            raise ValueError(f"unknown parameter {name!r} (allowed: {', '.join(PARAMS)}).")
        kind, low, high = PARAMS[name]
        if name == "base_url":
            if provider != "openai_compatible":
                raise ValueError("base_url is only for openai_compatible providers.")
            clean[name] = _checked_base_url(value)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number.")
        if kind is int and int(value) != value:
            raise ValueError(f"{name} must be a whole number.")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"{name} must be between {low:g} and {high:g}.")
        clean[name] = kind(value)
    return clean


def check_base_url(url: Any) -> str:
    """A model server URL a tenant sets (a provider key's base URL): ValidationError({"base_url": ...})."""
    try:
        return _checked_base_url(url)
    except ValueError as exc:
        raise ValidationError({"base_url": str(exc)}) from None


def _checked_base_url(url: Any) -> str:
    # The egress guard, as for every tenant-set URL; conversations.llm checks it again at each call
    # (DNS can change after saving, and chains saved before this check exist).
    if not isinstance(url, str):
        raise ValueError("base_url must be an http(s) URL.")
    try:
        check_url(url)
    except EgressRefused as exc:
        raise ValueError(
            f"base_url {url!r} is refused: {exc} Use a model server on the public internet, or ask the "
            "operator to add it to TENANT_URL_ALLOWLIST."
        ) from None
    return url.strip()


def check_prompt_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError({"system_prompt": "A bot needs a system prompt."})
    if len(text) > MAX_PROMPT_CHARS:
        raise ValidationError({"system_prompt": f"The system prompt can have at most {MAX_PROMPT_CHARS} characters."})
    return text.strip()


def check_blocked_topics(topics: Any) -> list[str]:
    if not isinstance(topics, list) or any(not isinstance(t, str) for t in topics):
        raise ValidationError({"blocked_topics": "Blocked topics must be a list of keywords."})
    clean = [t.strip() for t in topics if t.strip()]
    if len(clean) > MAX_TOPICS:
        raise ValidationError({"blocked_topics": f"At most {MAX_TOPICS} blocked topics."})
    for topic in clean:
        if topic.startswith("re:"):
            try:
                re.compile(topic[3:])
            except re.error as exc:
                raise ValidationError(
                    {"blocked_topics": f"{topic!r} is not a valid regular expression: {exc}."}
                ) from None
    return clean


def check_origins(origins: Any) -> list[str]:
    if not isinstance(origins, list):
        raise ValidationError({"allowed_origins": "Allowed origins must be a list."})
    clean = []
    for origin in origins:
        parts = urlsplit(str(origin).strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ValidationError({"allowed_origins": f"{origin!r} is not an origin such as https://www.example.com."})
        clean.append(f"{parts.scheme}://{parts.netloc}")
    return clean


def check_generation(*, max_answer_tokens: Any, temperature: Any) -> None:
    errors = {}
    if not isinstance(max_answer_tokens, int) or not 16 <= max_answer_tokens <= 8_000:
        errors["max_answer_tokens"] = "Max answer tokens must be between 16 and 8000."
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        errors["temperature"] = "Temperature must be between 0 and 2."
    if errors:
        raise ValidationError(errors)


MAX_SUGGESTED_QUESTIONS = 6
MAX_SUGGESTED_QUESTION_CHARS = 120


def check_suggested_questions(value: Any) -> list[str]:
    """The questions the widget offers as one-click chips (stored in `bot.widget["suggested_questions"]`).
    Accepts a list or text with one question per line; blank lines are dropped."""
    items = value.splitlines() if isinstance(value, str) else value
    if not isinstance(items, list) or any(not isinstance(q, str) for q in items):
        raise ValidationError({"suggested_questions": "Suggested questions must be a list of questions."})
    clean = [" ".join(q.split()) for q in items if q.strip()]
    if len(clean) > MAX_SUGGESTED_QUESTIONS:
        raise ValidationError(
            {"suggested_questions": f"At most {MAX_SUGGESTED_QUESTIONS} suggested questions (you gave {len(clean)})."}
        )
    for question in clean:
        if len(question) > MAX_SUGGESTED_QUESTION_CHARS:
            raise ValidationError(
                {
                    "suggested_questions": f"{question[:40]!r}… is too long: a suggested question has at most "
                    f"{MAX_SUGGESTED_QUESTION_CHARS} characters."
                }
            )
    return clean


# The widget look (bot.widget): every key with its check. hide_powered_by is also a branding key,
# gated by the plan in bots.services.
WIDGET_KEYS = {
    "primary_color",
    "position",
    "title",
    "avatar_url",
    "scheme",
    "launcher_label",
    "suggested_questions",
    "hide_powered_by",
}
WIDGET_POSITIONS = ("right", "left")
WIDGET_SCHEMES = ("auto", "light", "dark")
MAX_WIDGET_TITLE = 80
MAX_LAUNCHER_LABEL = 40


def check_widget_look(widget: Any) -> dict[str, Any]:
    """Return the look normalised (blank text keys dropped), or raise ValidationError keyed by
    `widget_<key>` (the designer's field names), so every error lands beside its field."""
    if not isinstance(widget, dict) or set(widget) - WIDGET_KEYS:
        raise ValidationError({"widget": f"Widget settings may only hold {', '.join(sorted(WIDGET_KEYS))}."})
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for key, value in widget.items():
        try:
            checked = _check_look_value(key, value)
        except ValueError as exc:
            # hide_powered_by has no field of its own on every form: its error is the look's.
            errors["widget" if key == "hide_powered_by" else f"widget_{key}"] = str(exc)
            continue
        if checked not in ("", None, []):
            clean[key] = checked
    if errors:
        raise ValidationError(errors)
    return clean


def _check_look_value(key: str, value: Any) -> Any:
    if key == "hide_powered_by":
        if not isinstance(value, bool):
            raise ValueError("hide_powered_by must be true or false.")
        return value or None
    if key == "suggested_questions":
        try:
            return check_suggested_questions(value)
        except ValidationError as exc:
            raise ValueError(" ".join(exc.message_dict["suggested_questions"])) from None
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text.")
    value = value.strip()
    if value and key in _TEXT_CHECKS:
        return _TEXT_CHECKS[key](value)
    return value


def _text_check(ok: Any, message: str) -> Any:
    def check(value: str) -> str:
        if not ok(value):
            raise ValueError(message)
        return value

    return check


_TEXT_CHECKS = {
    "primary_color": _text_check(
        lambda v: re.fullmatch(r"#[0-9a-fA-F]{6}", v), "The colour must be a hex colour such as #2563eb."
    ),
    "position": _text_check(lambda v: v in WIDGET_POSITIONS, "The position must be right or left."),
    "scheme": _text_check(lambda v: v in WIDGET_SCHEMES, "The theme must be auto, light or dark."),
    "title": _text_check(
        lambda v: len(v) <= MAX_WIDGET_TITLE, f"The title can have at most {MAX_WIDGET_TITLE} characters."
    ),
    "launcher_label": _text_check(
        lambda v: len(v) <= MAX_LAUNCHER_LABEL, f"The launcher label can have at most {MAX_LAUNCHER_LABEL} characters."
    ),
    "avatar_url": lambda v: _checked_avatar_url(v),
}


def _checked_avatar_url(url: str) -> str:
    # Visitors' browsers load the avatar, but it is still a tenant-set URL: the same egress guard
    # as every other one, so no page of ours points at an internal address. A name that does not
    # resolve (yet) is let through: nothing of ours fetches it, and a browser just shows no avatar.
    try:
        check_url(url)
    except EgressRefused as exc:
        if exc.code == "url_unresolvable":
            return url
        raise ValueError(f"The avatar URL is refused: {exc} Use an image on the public internet (https://…).") from None
    return url
