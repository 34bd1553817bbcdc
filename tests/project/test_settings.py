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
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.SECURE_HSTS_SECONDS, settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE)",
        ],
        env=base,
        capture_output=True,
        text=True,
        cwd=django_settings.BASE_DIR,
        timeout=120,
    )


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


def test_a_dotenv_copied_from_the_example_unchanged_keeps_the_defaults(tmp_path):
    """`cp .env.example .env` must start: comments after values are not part of them, and empty
    `NAME=` lines mean "the default", not an empty path, URL or backend."""
    probe = (
        "import django; from chatbot_saas.env import read_dotenv; read_dotenv('.env.example'); django.setup(); "
        "from django.conf import settings as s; "
        "print(s.SITE_URL, s.VAR_DIR, s.EMAIL_BACKEND, s.CELERY_BROKER_URL == s.REDIS_URL, sep='|')"
    )
    plain = "import django; django.setup(); " + probe.split("django.setup(); ", 1)[1]
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV and k != "SITE_URL"}
    base["WEB_PORT"] = "8010"
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            env=base,
            capture_output=True,
            text=True,
            cwd=django_settings.BASE_DIR,
            timeout=120,
        )
        for code in (probe, plain)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    with_example, without = (run.stdout.strip().splitlines()[-1] for run in runs)
    assert with_example == without
    assert with_example.startswith("http://127.0.0.1:8010|")
