"""The egress guard: every fetch of a user-given URL goes through knowledge.egress."""

from __future__ import annotations

import pytest

from knowledge.egress import EgressRefused, fetch
from tests.knowledge.httpserver import serve
from tests.support.tenant_urls import point_name_at

PAGE = b"<html><head><title>Hi</title></head><body><p>Hello from the test server.</p></body></html>"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8000/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://2130706433/",  # 127.0.0.1 as a decimal integer
        "http://0x7f000001/",  # ... as hex
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",  # ... as octal
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",  # IPv6-mapped loopback
        "http://[::ffff:a9fe:a9fe]/",  # IPv6-mapped metadata address
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://0.0.0.0/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://224.0.0.1/",
    ],
)
def test_private_loopback_and_metadata_addresses_are_refused_before_connecting(url, settings):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = False
    with pytest.raises(EgressRefused):
        fetch(url)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/x",
        "gopher://example.com/",
        "http://user:pw@example.com/",
        "http://",
        "javascript:alert(1)",
    ],
)
def test_other_schemes_credentials_and_malformed_urls_are_refused(url):
    with pytest.raises(EgressRefused):
        fetch(url)


def test_loopback_is_refused_by_default_even_when_a_server_listens(settings):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = False
    with serve({"/": (200, {"Content-Type": "text/html"}, PAGE)}) as base, pytest.raises(EgressRefused):
        fetch(base + "/")


def test_the_operators_allowlist_opens_exactly_the_hosts_and_networks_it_names(settings, monkeypatch):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = False
    point_name_at(monkeypatch, "intranet.test", "127.0.0.1")
    with serve({"/page": (200, {"Content-Type": "text/html"}, PAGE)}) as base:
        port = base.rsplit(":", 1)[1]
        for entry in (["127.0.0.1"], ["127.0.0.0/8"], ["intranet.test"]):
            settings.TENANT_URL_ALLOWLIST = entry
            host = "intranet.test" if entry == ["intranet.test"] else "127.0.0.1"
            assert fetch(f"http://{host}:{port}/page").content == PAGE
        settings.TENANT_URL_ALLOWLIST = ["10.0.0.0/8", "ollama.lan"]
        with pytest.raises(EgressRefused):
            fetch(base + "/page")


def test_a_page_is_fetched_when_loopback_is_explicitly_allowed(settings):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True
    with serve({"/page": (200, {"Content-Type": "text/html"}, PAGE)}) as base:
        result = fetch(base + "/page")
    assert result.status == 200 and result.content == PAGE and result.url == base + "/page"


def test_allowing_loopback_still_refuses_private_and_metadata_addresses(settings):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True
    for url in ("http://169.254.169.254/", "http://10.1.2.3/", "http://[::ffff:10.0.0.1]/"):
        with pytest.raises(EgressRefused):
            fetch(url)


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/", "http://[::ffff:192.168.0.1]/"]
)
def test_a_redirect_to_a_private_address_is_refused(settings, target):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True
    with serve({"/go": (302, {"Location": target}, b"")}) as base, pytest.raises(EgressRefused) as info:
        fetch(base + "/go")
    assert "not a public" in str(info.value)


def test_redirects_are_followed_and_rechecked_within_the_limit(settings):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True
    settings.KNOWLEDGE_FETCH_MAX_REDIRECTS = 2
    routes = {
        "/a": (302, {"Location": "/b"}, b""),
        "/b": (301, {"Location": "/page"}, b""),
        "/page": (200, {}, PAGE),
        "/loop": (302, {"Location": "/loop"}, b""),
    }
    with serve(routes) as base:
        assert fetch(base + "/a").url == base + "/page"
        with pytest.raises(EgressRefused):
            fetch(base + "/loop")


def test_a_body_over_the_size_cap_is_refused(settings):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True
    with serve({"/big": (200, {}, b"x" * 5000)}) as base, pytest.raises(EgressRefused) as info:
        fetch(base + "/big", max_bytes=1000)
    assert info.value.code == "fetch_too_large"


def test_an_error_status_is_reported_as_a_failed_fetch(settings):
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True
    with serve({}) as base, pytest.raises(EgressRefused) as info:
        fetch(base + "/missing")
    assert info.value.code == "fetch_failed"
