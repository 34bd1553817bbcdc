from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from billing.models import Subscription
from tenants.models import Membership, Role, Tenant

SIGNUP = {
    "email": "new@example.com",
    "password1": "a-strong passphrase 42",
    "password2": "a-strong passphrase 42",
    "organisation": "Newco Labs",
}


def test_signup_creates_a_tenant_with_the_user_as_owner_on_the_free_plan(client, db):
    response = client.post("/accounts/signup/", SIGNUP)
    assert response.status_code == 302
    user = get_user_model().objects.get(email="new@example.com")
    membership = Membership.objects.unscoped().get(user=user)
    assert membership.role == Role.OWNER
    assert membership.tenant.name == "Newco Labs"
    assert membership.tenant.slug == "newco-labs"
    assert Subscription.objects.unscoped().get(tenant=membership.tenant).plan.is_default
    dashboard = client.get("/dashboard/", follow=True)
    assert dashboard.status_code == 200
    assert dashboard.redirect_chain[-1][0] == "/t/newco-labs/"
    assert b"Get started" in dashboard.content


def test_signup_with_an_existing_slug_gets_a_unique_one(client, world):
    client.post("/accounts/signup/", {**SIGNUP, "organisation": "Acme"})
    tenant = Membership.objects.unscoped().get(user__email="new@example.com").tenant
    assert tenant.slug != "acme" and tenant.slug.startswith("acme-")


@pytest.mark.parametrize(
    "override",
    [
        {"organisation": ""},
        {"organisation": "   "},
        {"organisation": "x" * 500},
        {"email": "not-an-email"},
        {"password2": "different"},
    ],
)
def test_bad_signup_posts_show_errors_and_create_nothing(client, db, override):
    response = client.post("/accounts/signup/", {**SIGNUP, **override})
    assert response.status_code == 200
    assert b"errorlist" in response.content or b"error" in response.content
    assert not get_user_model().objects.filter(email="new@example.com").exists()
    assert Tenant.objects.count() == 0


def test_oversized_signup_post_is_refused(client, db):
    response = client.post("/accounts/signup/", {**SIGNUP, "organisation": "x" * 3_000_000})
    assert response.status_code == 400
    assert Tenant.objects.count() == 0


def test_login_is_rate_limited_after_repeated_failures(client, world):
    pages = [
        client.post("/accounts/login/", {"login": "alice@example.com", "password": "wrong"}).content for _ in range(6)
    ]
    assert b"Too many failed login attempts" not in pages[0]
    assert b"Too many failed login attempts" in pages[-1]
    # Once limited, even the right password is refused until the window passes.
    right = client.post("/accounts/login/", {"login": "alice@example.com", "password": "correct horse battery staple"})
    assert right.status_code == 200 and b"Too many failed login attempts" in right.content


def test_login_page_floods_get_429(client, world):
    statuses = {client.get("/accounts/login/").status_code for _ in range(3)}
    statuses |= {
        client.post("/accounts/login/", {"login": f"x{i}@example.com", "password": "x"}).status_code for i in range(35)
    }
    assert 429 in statuses


def test_login_then_dashboard(client, world):
    response = client.post(
        "/accounts/login/", {"login": "alice@example.com", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    assert client.get("/dashboard/").url == "/t/acme/"


def test_password_reset_sends_an_email(client, world):
    client.post("/accounts/password/reset/", {"email": "alice@example.com"})
    assert len(mail.outbox) == 1
    assert "password" in mail.outbox[0].body.lower()
