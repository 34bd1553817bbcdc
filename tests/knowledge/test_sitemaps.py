"""Sitemap indexes, gzip-compressed sitemaps, and the limits on crawling them, against a local server."""

from __future__ import annotations

import gzip
from collections import Counter

import pytest

from knowledge.ingestion import document_ingest
from knowledge.models import Chunk, Document
from knowledge.parsing import ParseError
from knowledge.services import document_create_from_url
from knowledge.sitemaps import gunzip_capped
from tenants.context import tenant_context
from tests.knowledge.httpserver import HITS, serve

XML = {"Content-Type": "application/xml"}
GZ = {"Content-Type": "application/x-gzip"}
PAGE = (
    "<html><body><article><p>This is {} and it has enough words to count as the main text.</p></article></body></html>"
)


def urlset(*urls: str) -> bytes:
    body = "".join(f"<url><loc>{u}</loc></url>" for u in urls)
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>'.encode()


def index(*urls: str) -> bytes:
    body = "".join(f"<sitemap><loc>{u}</loc></sitemap>" for u in urls)
    return (
        f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</sitemapindex>'
    ).encode()


def pages(routes: dict, *names: str) -> None:
    for name in names:
        routes[f"/{name}"] = (200, {"Content-Type": "text/html"}, PAGE.format(name).encode())


@pytest.fixture
def crawl(world, kb_a, media, settings):
    """Ingest `path` on a local server as a sitemap document; returns (document, hits by path).

    "BASE" in bodies becomes the server's URL; GZ bodies are gzipped after that."""
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True

    def run(routes: dict, path: str = "/sitemap.xml") -> tuple[Document, Counter]:
        with serve(routes) as base:
            for key, (status, headers, body) in list(routes.items()):
                body = body.replace(b"BASE", base.encode())
                if headers is GZ and not body.startswith(b"\x1f\x8b"):
                    body = gzip.compress(body)  # served as a .xml.gz file, not Content-Encoding
                routes[key] = (status, headers, body)
            with tenant_context(world.tenant_a):
                document = document_create_from_url(knowledge_base=kb_a, url=base + path, is_sitemap=True)
                document_ingest(document_id=document.pk)
                document.refresh_from_db()
            hits = Counter(HITS[base])
        return document, hits

    return run


def page_urls(document: Document) -> list[str]:
    chunks = Chunk.objects.unscoped().filter(document=document, document_version=document.active_version)
    return sorted({c.source_url.rsplit("/", 1)[-1] for c in chunks})


def test_a_sitemap_index_is_followed_into_plain_and_gzipped_child_sitemaps(crawl):
    routes = {
        "/sitemap.xml": (200, XML, index("BASE/docs.xml", "BASE/blog.xml.gz")),
        "/docs.xml": (200, XML, urlset("BASE/a", "BASE/b")),
        "/blog.xml.gz": (200, GZ, urlset("BASE/c", "BASE/a")),
    }
    pages(routes, "a", "b", "c")
    document, hits = crawl(routes)
    assert document.status == "ready", document.error_message
    assert page_urls(document) == ["a", "b", "c"]
    assert hits["/a"] == 1, "a page listed twice in the tree is fetched once"


def test_the_page_cap_applies_across_the_whole_tree(crawl, settings):
    settings.KNOWLEDGE_SITEMAP_MAX_PAGES = 3
    routes = {
        "/sitemap.xml": (200, XML, index("BASE/one.xml", "BASE/two.xml", "BASE/three.xml")),
        "/one.xml": (200, XML, urlset("BASE/a", "BASE/b")),
        "/two.xml": (200, XML, urlset("BASE/c", "BASE/d")),
        "/three.xml": (200, XML, urlset("BASE/e")),
    }
    pages(routes, "a", "b", "c", "d", "e")
    document, hits = crawl(routes)
    assert page_urls(document) == ["a", "b", "c"]
    assert hits["/d"] == 0 and hits["/three.xml"] == 0, "nothing past the cap is fetched"


def test_a_child_sitemap_at_a_private_address_is_refused_and_the_rest_ingested(crawl):
    routes = {
        "/sitemap.xml": (
            200,
            XML,
            index("http://169.254.169.254/latest/sitemap.xml", "http://10.0.0.7/s.xml", "BASE/hop", "BASE/ok.xml"),
        ),
        # A public-looking child that redirects to a private address: re-checked at the redirect.
        "/hop": (302, {"Location": "http://192.168.1.1/sitemap.xml"}, b""),
        "/ok.xml": (200, XML, urlset("BASE/a", "http://[::ffff:10.0.0.1]/p")),
    }
    pages(routes, "a")
    document, hits = crawl(routes)
    assert document.status == "ready" and page_urls(document) == ["a"]
    assert hits["/hop"] == 1


def test_a_cycle_of_sitemap_indexes_ends_and_fetches_each_sitemap_once(crawl):
    routes = {
        "/sitemap.xml": (200, XML, index("BASE/loop.xml", "BASE/pages.xml")),
        "/loop.xml": (200, XML, index("BASE/sitemap.xml", "BASE/loop.xml", "BASE/back")),
        "/back": (301, {"Location": "/sitemap.xml"}, b""),
        "/pages.xml": (200, XML, urlset("BASE/a")),
    }
    pages(routes, "a")
    document, hits = crawl(routes)
    assert document.status == "ready" and page_urls(document) == ["a"]
    assert hits["/loop.xml"] == 1 and hits["/pages.xml"] == 1
    # Once as the root, once more at the end of /back's redirect, where the crawl stops.
    assert hits["/sitemap.xml"] == 2


def test_sitemap_indexes_nested_deeper_than_the_limit_are_not_followed(crawl, settings):
    settings.KNOWLEDGE_SITEMAP_MAX_DEPTH = 2
    routes = {
        "/sitemap.xml": (200, XML, index("BASE/l1.xml", "BASE/near.xml")),
        "/l1.xml": (200, XML, index("BASE/l2.xml")),
        "/l2.xml": (200, XML, index("BASE/l3.xml")),
        "/l3.xml": (200, XML, urlset("BASE/deep")),
        "/near.xml": (200, XML, urlset("BASE/a")),
    }
    pages(routes, "a", "deep")
    document, hits = crawl(routes)
    assert page_urls(document) == ["a"]
    assert hits["/l2.xml"] == 1 and hits["/l3.xml"] == 0


def test_a_gzip_bomb_sitemap_fails_cleanly_and_a_bomb_child_is_skipped(crawl, settings):
    settings.KNOWLEDGE_SITEMAP_MAX_DECOMPRESSED_BYTES = 100_000
    bomb = gzip.compress(urlset("BASE/a") + b" " * 5_000_000)
    assert len(bomb) < 10_000
    document, _hits = crawl({"/sitemap.xml.gz": (200, GZ, bomb)}, "/sitemap.xml.gz")
    assert (document.status, document.error_code) == ("failed", "sitemap_too_large")

    routes = {
        "/sitemap.xml": (200, XML, index("BASE/bomb.xml.gz", "BASE/ok.xml")),
        "/bomb.xml.gz": (200, GZ, bomb),
        "/ok.xml": (200, XML, urlset("BASE/a")),
    }
    pages(routes, "a")
    document, _hits = crawl(routes)
    assert document.status == "ready" and page_urls(document) == ["a"]


def test_a_sitemap_index_whose_children_all_fail_ends_failed_with_a_reason(crawl):
    document, _hits = crawl({"/sitemap.xml": (200, XML, index("http://127.0.0.1:9/missing.xml"))})
    assert (document.status, document.error_code) == ("failed", "sitemap_empty")


def test_gunzip_stops_at_the_limit_without_inflating_everything():
    data = gzip.compress(b"x" * 10_000_000)
    with pytest.raises(ParseError) as info:
        gunzip_capped(data, limit=1_000_000)
    assert info.value.code == "sitemap_too_large"
    assert gunzip_capped(gzip.compress(b"<urlset/>"), limit=100) == b"<urlset/>"
    with pytest.raises(ParseError):
        gunzip_capped(b"\x1f\x8b" + b"garbage" * 10, limit=1000)
