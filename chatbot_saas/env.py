"""The one place settings read the environment.

Every variable is documented in docs/configuration.md and .env.example. A bad value raises
ImproperlyConfigured naming the variable, so a misconfigured deploy fails at start-up
instead of at the first request.
"""

from __future__ import annotations

import ipaddress
import os
import re

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()


def read_dotenv(path: str) -> None:
    """Load KEY=VALUE lines from `path` without overriding the real environment."""
    if os.path.exists(path):
        # .env.example (the file people copy) puts a comment after most values.
        environ.Env.read_env(path, overwrite=False, parse_comments=True)


def _raw(name: str) -> str | None:
    """The variable's value without surrounding blanks, or None when unset or blank: an empty
    `NAME=` (as in a .env copied from .env.example) means "use the default" for every helper."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    return raw.strip()


def envbool(name: str, default: bool) -> bool:
    raw = _raw(name)
    if raw is None:
        return default
    value = raw.lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def envint(name: str, default: int) -> int:
    raw = _raw(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def envstr(name: str, default: str = "") -> str:
    raw = _raw(name)
    return default if raw is None else raw


def envlist(name: str, default: list[str] | None = None) -> list[str]:
    raw = _raw(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def envhosts(name: str) -> list[str]:
    """Comma-separated host names, addresses or CIDR networks (e.g. "ollama.lan,10.0.5.0/24")."""
    entries = envlist(name)
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
            continue
        except ValueError:
            pass
        # Not a network: it must look like a host name, or a mistyped CIDR would silently match nothing.
        if "/" in entry or ":" in entry or not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", entry):
            raise ImproperlyConfigured(f"{name}: {entry!r} is neither a host name nor an address or CIDR network.")
    return entries


def required(name: str, *, production: bool, dev_default: str) -> str:
    """A setting that production must set explicitly; local runs get a safe default."""
    value = _raw(name)
    if value:
        return value
    if production:
        raise ImproperlyConfigured(
            f"{name} is not set. It is required when DJANGO_DEBUG=false; see .env.example for what it should contain."
        )
    return dev_default
