"""No secret reaches a log line: malformed Authorization headers on the API routes log nothing of
the key at any level (the source), and the log formatter and filter scrub anything shaped like a
secret that slips through (the second wall)."""

from __future__ import annotations

import base64
import logging
import sys

import pytest
from django.conf import settings as django_settings
from django.core import signing
from django.test import Client

from billing.services import subscription_comp
from chatbot_saas.logredact import RedactingFormatter, RedactSecretsFilter
from tenants.context import tenant_context
from tenants.services import api_key_create
from tests.bots.factories import BotFactory
from tests.knowledge.factories import KnowledgeBaseFactory

LOGGERS = ["", "django", "django.request", "django.security", "django.server", "ninja", "chatbot_saas"]


def _malformed(raw: str) -> dict[str, dict[str, str]]:
    basic = base64.b64encode(f"{raw}:".encode()).decode()
    return {
        "basic with the key": {"HTTP_AUTHORIZATION": f"Basic {raw}"},
        "basic, encoded": {"HTTP_AUTHORIZATION": f"Basic {basic}"},
        "bearer with junk after": {"HTTP_AUTHORIZATION": f"Bearer {raw}junk"},
        "bearer with a second word": {"HTTP_AUTHORIZATION": f"Bearer {raw} extra"},
        "lowercase scheme": {"HTTP_AUTHORIZATION": f"bearer {raw}"},
        "no scheme": {"HTTP_AUTHORIZATION": raw},
        "another scheme": {"HTTP_AUTHORIZATION": f"Token {raw}"},
        "overlong": {"HTTP_AUTHORIZATION": f"Bearer {raw}{'x' * 20000}"},
        "another header": {"HTTP_X_API_KEY": raw},
    }


@pytest.fixture
def logs(caplog):
    """Every record at DEBUG, as the code under test emitted it: the redacting filter (the second
    wall, which rewrites records in place) is taken off every handler, so only the source is tested."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    removed = []
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            for wall in [f for f in handler.filters if isinstance(f, RedactSecretsFilter)]:
                handler.removeFilter(wall)
                removed.append((handler, wall))
    yield caplog
    for handler, wall in removed:
        handler.addFilter(wall)


def _send(client: Client, method: str, url: str):
    if method == "post":
        return client.post(url, data="{}", content_type="application/json")
    return client.get(url)


def _leaks(records: list[logging.LogRecord], secrets: list[str]) -> list[str]:
    found = []
    for record in records:
        text = " ".join([record.getMessage(), repr(record.args), record.exc_text or ""])
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        found += [f"{record.name}: {record.getMessage()[:120]}" for s in secrets if s in text]
    return found


def test_no_malformed_authorization_header_puts_the_key_in_any_log_line(world, logs, settings):
    settings.DEBUG = True  # Ninja's HttpBearer logged the whole header only under DEBUG
    subscription_comp(tenant=world.tenant_a, plan_slug="starter")
    with tenant_context(world.tenant_a):
        _, raw = api_key_create(tenant=world.tenant_a, name="leak", scopes=["chat", "bots:read", "knowledge:read"])
    bot = BotFactory(tenant=world.tenant_a)
    kb = KnowledgeBaseFactory(tenant=world.tenant_a)
    secret = raw.split("_", 2)[2]
    routes = [
        ("get", "/api/v1/bots"),
        ("get", f"/api/v1/bots/{bot.pk}"),
        ("post", "/api/v1/conversations"),
        ("get", f"/api/v1/knowledge-bases/{kb.pk}/documents"),
        ("get", "/v1/models"),
        ("post", "/v1/chat/completions"),
    ]
    statuses = set()
    for kind, headers in _malformed(raw).items():
        client = Client(**headers)
        for method, url in routes:
            response = _send(client, method, url)
            statuses.add((kind, response.status_code))
            assert secret not in response.content.decode(), (kind, url)
    for method, url in routes:
        for query in (f"?api_key={raw}", f"?key={raw}", f"?token={raw}"):
            response = _send(Client(), method, url + query)
            assert response.status_code == 401 and secret not in response.content.decode()
    assert ("basic with the key", 401) in statuses and ("no scheme", 401) in statuses
    assert any(r.name == "django.request" for r in logs.records), "the capture must see Django's request log"
    assert _leaks(logs.records, [raw, secret]) == []


SECRETS = {
    "api key": "cbk_3f9a1c2b_Zx8yQ1pL0mN4vB7cT2wR5sK9",
    "openai key": "sk-proj-AbCdEf0123456789GhIjKlMn",
    "anthropic key": "sk-ant-api03-AbCdEf0123456789GhIj",
    "stripe secret": "sk_live_51HxYzAbCdEf0123456789",
    "stripe restricted key": "rk_test_51HxYzAbCdEf0123456789",
    "stripe webhook secret": "whsec_AbCdEf0123456789GhIjKl",
    "basic credentials": "Basic Y2JrXzNmOWExYzJiX1p4OHk6",
    "session cookie": "sessionid=8k2j3h4g5f6d7s8a9p0o1i2u3y4t5r6e",
    "widget session token": signing.dumps({"bot": "b" * 20, "visitor": "v" * 20}, salt="test", compress=True),
}


@pytest.mark.parametrize("kind", list(SECRETS))
def test_the_log_formatter_and_filter_scrub_each_kind_of_secret(kind):
    secret = SECRETS[kind]
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "call failed with %s in it", (secret,), None)
    try:
        raise RuntimeError(f"provider said no to {secret}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    line = RedactingFormatter("%(levelname)s %(message)s").format(record)
    assert secret not in line and "[REDACTED]" in line and "provider said no" in line
    filtered = logging.LogRecord("x", logging.INFO, __file__, 1, "sent %s", (secret,), None)
    assert RedactSecretsFilter().filter(filtered) and secret not in filtered.getMessage()


def test_the_configured_console_handler_uses_the_redacting_formatter_and_filter():
    console = django_settings.LOGGING["handlers"]["console"]
    assert "redact_secrets" in console["filters"]
    formatter = django_settings.LOGGING["formatters"][console["formatter"]]
    assert formatter["()"] == "chatbot_saas.logredact.RedactingFormatter"


def test_ordinary_log_lines_are_left_alone():
    message = "Basic settings saved; bearer of bad news; token budget 512; 12:30:45 took 3 ms"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, message, None, None)
    assert RedactingFormatter("%(message)s").format(record) == message
