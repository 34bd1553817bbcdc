"""The launcher's printed URLs and SITE_URL follow WEB_PORT and WIDGET_DEMO_PORT."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from django.conf import settings

from chatbot_saas.devservices import _check_ports_free, app_urls
from tests.support.servers import free_port


def test_the_launcher_prints_the_web_and_demo_urls_of_the_configured_ports():
    assert app_urls({"WEB_PORT": "9123", "WIDGET_DEMO_PORT": "9124"}) == (
        "http://127.0.0.1:9123/",
        "http://127.0.0.1:9124/",
    )
    assert app_urls({}) == ("http://127.0.0.1:8000/", "http://127.0.0.1:8001/")


def test_a_port_that_is_not_a_number_stops_the_launcher_naming_the_variable():
    with pytest.raises(SystemExit, match="WEB_PORT must be a port number"):
        app_urls({"WEB_PORT": "eighty"})


def _site_url(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("SITE_URL", "WEB_PORT")}
    base.update(env)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.SITE_URL)",
        ],
        env=base,
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_site_url_follows_web_port_unless_it_is_set():
    assert _site_url(WEB_PORT="9123") == "http://127.0.0.1:9123"
    assert _site_url(WEB_PORT="9123", SITE_URL="https://chat.example.com/") == "https://chat.example.com"


def test_a_second_make_run_on_ports_in_use_is_refused_with_the_variable_to_change():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(SystemExit, match=f"port {port} \\(WEB_PORT\\) is in use"):
            _check_ports_free({"WEB_PORT": str(port), "WIDGET_DEMO_PORT": str(free_port())})
    _check_ports_free({"WEB_PORT": str(free_port()), "WIDGET_DEMO_PORT": str(free_port())})
