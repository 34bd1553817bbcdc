"""Production mode refuses to start without its required settings, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "SECRET_KEY": "x" * 50,
    "ALLOWED_HOSTS": "chat.example.com",
    "DATABASE_URL": "postgres://u:p@db.example.com:5432/chat",
    "REDIS_URL": "redis://cache.example.com:6379/0",
    "METRICS_TOKEN": "m" * 32,
}


def _load_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    base.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; print(settings.SECURE_HSTS_SECONDS, settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE)"],
        env=base, capture_output=True, text=True, cwd=django_settings.BASE_DIR, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN"])
def test_production_refuses_to_start_without(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = _load_settings(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and missing in result.stderr


def test_production_settings_are_secure():
    result = _load_settings(PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["31536000", "True", "True"]


def test_a_bad_boolean_names_its_variable():
    result = _load_settings({"DJANGO_DEBUG": "maybe"})
    assert result.returncode != 0 and "DJANGO_DEBUG" in result.stderr


def test_local_runs_start_without_a_metrics_token():
    result = _load_settings({"DJANGO_DEBUG": "true", "METRICS_TOKEN": ""})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "ollama.lan:11434", "http://ollama.lan", "10.0.0.0/x"])
def test_a_malformed_tenant_url_allowlist_entry_names_its_variable(entry):
    result = _load_settings({"TENANT_URL_ALLOWLIST": f"ollama.lan,{entry}"})
    assert result.returncode != 0 and "TENANT_URL_ALLOWLIST" in result.stderr


def test_tenant_url_allowlist_takes_hosts_addresses_and_networks():
    result = _load_settings({"TENANT_URL_ALLOWLIST": "ollama.lan, 10.0.5.0/24,192.168.1.7,fd00::/8"})
    assert result.returncode == 0, result.stderr
