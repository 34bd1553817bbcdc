from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from chatbot_saas.errors import AppError
from tenants.context import tenant_context
from tenants.models import Invitation, Membership, Role
from tenants.services import invitation_accept, invitation_create
from tests.factories import UserFactory


def _invite(world, email="dana@example.com", role=Role.MEMBER):
    with tenant_context(world.tenant_a):
        return invitation_create(tenant=world.tenant_a, email=email, role=role, invited_by=world.alice)


def test_admin_invites_by_email_and_invitee_accepts_once(world, settings):
    settings.BILLING_GRACE_DAYS = 7
    alice = world.client_for(world.alice)
    response = alice.post("/t/acme/members/", {"email": "dana@example.com", "role": "member"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = next(line for line in mail.outbox[0].body.splitlines() if "/invitations/" in line)
    path = link.split("http://127.0.0.1:8000", 1)[1]
    dana = UserFactory(username="dana")
    dana_client = world.client_for(dana)
    assert dana_client.post(path).url == "/t/acme/"
    assert Membership.objects.unscoped().filter(user=dana, tenant=world.tenant_a, role=Role.MEMBER).exists()
    again = dana_client.post(path)
    assert again.status_code == 410 and b"already used" in again.content


def test_member_cannot_invite(world):
    response = world.client_for(world.bob).post("/t/acme/members/", {"email": "x@example.com", "role": "admin"})
    assert response.status_code == 403
    assert Invitation.objects.unscoped().count() == 0


@pytest.mark.parametrize("data", [{"email": "nope", "role": "member"}, {"email": "a@b.co", "role": "owner"}, {}])
def test_malformed_invitation_form_changes_nothing(world, data):
    response = world.client_for(world.alice).post("/t/acme/members/", data)
    assert response.status_code == 400
    assert Invitation.objects.unscoped().count() == 0


def test_expired_invitation_is_refused(world):
    invitation, token = _invite(world)
    Invitation.objects.unscoped().filter(pk=invitation.pk).update(expires=timezone.now() - timedelta(seconds=1))
    with pytest.raises(AppError) as excinfo:
        invitation_accept(token=token, user=UserFactory())
    assert excinfo.value.code == "invitation_expired"


def test_revoked_and_forged_tokens_are_refused(world):
    invitation, token = _invite(world)
    world.client_for(world.alice).post(f"/t/acme/invitations/{invitation.pk}/revoke/")
    with pytest.raises(AppError) as revoked:
        invitation_accept(token=token, user=UserFactory())
    assert revoked.value.code == "invitation_revoked"
    response = world.client_for(world.charlie).post("/invitations/forged-token/")
    assert response.status_code == 404
    assert Membership.objects.unscoped().filter(user=world.charlie, tenant=world.tenant_a).count() == 0


def test_inviting_an_existing_member_is_refused(world):
    with pytest.raises(AppError) as excinfo:
        _invite(world, email="bob@example.com")
    assert excinfo.value.code == "already_member"


def test_invitation_into_a_suspended_tenant_is_refused(world):
    from tenants.services import tenant_suspend

    _, token = _invite(world)
    tenant_suspend(tenant=world.tenant_a)
    with pytest.raises(AppError) as excinfo:
        invitation_accept(token=token, user=UserFactory())
    assert excinfo.value.code == "tenant_suspended"


def test_last_owner_cannot_be_removed(world):
    with tenant_context(world.tenant_a):
        alice_membership = Membership.objects.get(user=world.alice)
    response = world.client_for(world.alice).post(f"/t/acme/members/{alice_membership.pk}/remove/", follow=True)
    assert b"at least one owner" in response.content
    assert Membership.objects.unscoped().filter(pk=alice_membership.pk).exists()
