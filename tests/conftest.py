"""Shared fixtures: alice (owner of A), bob (member of A), charlie (owner of B, outsider to A),
and tenant C where bob is also owner (a user in two workspaces)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from django.conf import settings
from django.test import Client

from tenants.context import tenant_context
from tenants.models import Role, Tenant
from tests.factories import MembershipFactory, TenantFactory, UserFactory
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
    # In-process turns share the test's connection and transaction (pool threads would not see
    # uncommitted test data); daphne subprocesses keep the pool. See ANSWER_DB_THREADS.
    settings.ANSWER_DB_THREADS = 0


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
    with celery_worker("session") as worker:
        yield worker


@pytest.fixture(scope="session")
def live_daphne(django_db_setup: None) -> Iterator[str]:
    """A real daphne on the test database; yields its base URL. Use with transactional_db."""
    with daphne_server() as (base_url, _process):
        yield base_url
