"""Shared fixtures: alice (owner of A), bob (member of A), charlie (owner of B, outsider to A),
and tenant C where bob is also owner (a user in two workspaces)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.test import Client

from chatbot_saas import runtime
from tenants.context import tenant_context
from tenants.models import Role, Tenant
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.support.host_site import HostSite, host_site_server
from tests.support.servers import celery_worker, daphne_server

# Fixtures that start a real process (daphne, uvicorn, a Celery worker, chromium) or build an
# HNSW index over thousands of rows: a test using any of them is marked `slow`, so
# `make test-fast` leaves it out without anyone remembering to.
SLOW_FIXTURES = frozenset(
    {
        "live_worker",
        "live_daphne",
        "chat_server",
        "uvicorn_chat_server",
        "workers_chat_server",
        "browser",
        "crowded_table",
    }
)
# Tests that start such processes themselves say so with `integration` or `browser` (or `slow`).
SLOW_MARKERS = ("integration", "browser", "slow")
# Under `make test` (xdist, --dist loadgroup) the tests sharing one of these costly fixtures run on
# one worker, so it starts once; every other test goes to whichever worker is free.
GROUPED_FIXTURES = ("chat_server", "uvicorn_chat_server", "workers_chat_server", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if not SLOW_FIXTURES.isdisjoint(fixtures) or any(item.get_closest_marker(name) for name in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)
        group = next((name for name in GROUPED_FIXTURES if name in fixtures), None)
        if group and not item.get_closest_marker("xdist_group"):
            # The browser is module-scoped: one group per module lets two modules use both workers.
            scope = f"{group}:{item.module.__name__}" if group == "browser" and item.module else group
            item.add_marker(pytest.mark.xdist_group(scope))


def pytest_configure(config: pytest.Config) -> None:
    # PBKDF2 costs ~0.3 s a user; tests are not about password hashing strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_runtime(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each case starts without process-wide state (chatbot_saas.runtime: pools, remembered
    scopes, hints, the memory-refresh batch) and ends by stopping the answer path's threads.

    The answer path runs its production thread pools here too. A case inside a test transaction
    (the `db` fixture, not `transactional_db`) lends its connection to the database threads, as
    Django's LiveServerThread does for in-memory databases, so they see its uncommitted rows."""
    runtime.reset()
    lent = _in_test_transaction(request)
    if lent:
        _lend_connection_to_db_threads()
    yield
    runtime.reset()  # leaves this thread's own (lent) connection open
    if lent:
        connections[DEFAULT_DB_ALIAS].dec_thread_sharing()


def _in_test_transaction(request: pytest.FixtureRequest) -> bool:
    names = set(request.fixturenames)
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in names or "live_server" in names
    if marker is not None and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        transactional = True
    return not transactional and ("db" in names or marker is not None)


def _lend_connection_to_db_threads() -> None:
    wrapper = connections[DEFAULT_DB_ALIAS]
    wrapper.inc_thread_sharing()
    size = settings.ANSWER_DB_THREADS
    # Every thread of the pool takes the connection: each waits for the others, so the pool
    # starts all `size` threads rather than reusing the first.
    all_started = threading.Barrier(size)

    def take() -> None:
        connections[DEFAULT_DB_ALIAS] = wrapper
        all_started.wait(timeout=30)

    pool = runtime.pool("db", size)
    for future in [pool.submit(take) for _ in range(size)]:
        future.result()


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    """Clear Django's cache keys (rate-limit counters) between tests, not Celery's queues."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        client.delete(key)
    yield
    client.close()


@dataclass
class World:
    tenant_a: Tenant
    tenant_b: Tenant
    tenant_c: Tenant
    alice: object
    bob: object
    charlie: object

    def client_for(self, user: object) -> Client:
        client = Client()
        client.force_login(user)
        return client


@pytest.fixture
def world(db: None) -> World:
    tenant_a = TenantFactory(name="Acme", slug="acme")
    tenant_b = TenantFactory(name="Bravo", slug="bravo")
    tenant_c = TenantFactory(name="Cobalt", slug="cobalt")
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    charlie = UserFactory(username="charlie")
    MembershipFactory(tenant=tenant_a, user=alice, role=Role.OWNER)
    MembershipFactory(tenant=tenant_a, user=bob, role=Role.MEMBER)
    MembershipFactory(tenant=tenant_b, user=charlie, role=Role.OWNER)
    MembershipFactory(tenant=tenant_c, user=bob, role=Role.OWNER)
    return World(tenant_a, tenant_b, tenant_c, alice, bob, charlie)


@pytest.fixture
def in_tenant_a(world: World) -> Iterator[Tenant]:
    with tenant_context(world.tenant_a):
        yield world.tenant_a


@pytest.fixture(scope="session")
def live_worker(django_db_setup: None, django_db_blocker: object) -> Iterator[object]:
    """A real Celery worker on the test database. Use with transactional_db."""
    from chatbot_saas.celery import app

    app.control.purge()
    # The fake model servers run on 127.0.0.1; tests that set a bot's base_url to one need the
    # operator's allowlist (tenants cannot reach loopback by default).
    with celery_worker("session", TENANT_URL_ALLOWLIST="127.0.0.1") as worker:
        yield worker


@pytest.fixture(scope="session")
def live_daphne(django_db_setup: None) -> Iterator[str]:
    """A real daphne on the test database; yields its base URL. Use with transactional_db."""
    with daphne_server(TENANT_URL_ALLOWLIST="127.0.0.1") as (base_url, _process):  # as live_worker says
        yield base_url


@pytest.fixture(scope="session")
def host_site() -> Iterator[HostSite]:
    """A customer's website on another origin (tests/support/host_site.py)."""
    with host_site_server() as site:
        yield site
