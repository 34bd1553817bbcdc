"""The Team page: invite by email with a role, change roles, remove members; the last owner stays."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chatbot_saas.errors import AppError
from tenants.context import tenant_context
from tenants.models import Invitation, Membership, Role
from tenants.services import membership_remove, membership_role_change
from tests.factories import InvitationFactory, MembershipFactory, UserFactory


def _membership(world, user, tenant=None):
    with tenant_context(tenant or world.tenant_a):
        return Membership.objects.select_related("user").get(user=user)


def test_an_owner_invites_by_email_with_a_role_and_sees_the_invitation_pending(world, mailoutbox):
    client = world.client_for(world.alice)
    response = client.post(reverse("member_list", args=["acme"]), {"email": "dana@example.com", "role": "admin"})
    assert response.status_code == 302
    invitation = Invitation.objects.unscoped().get(tenant=world.tenant_a)
    assert (invitation.email, invitation.role) == ("dana@example.com", "admin")
    assert mailoutbox[0].to == ["dana@example.com"]
    page = client.get(reverse("member_list", args=["acme"])).content.decode()
    assert "dana@example.com" in page and reverse("invitation_revoke", args=["acme", invitation.pk]) in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not an email", "role": "member"}, "Enter a valid email address."),
        ({"email": "dana@example.com", "role": "owner"}, "Select a valid choice."),
        ({"email": "bob@example.com", "role": "member"}, "already a member of this workspace"),
    ],
)
def test_a_bad_invitation_is_explained_in_place(world, data, message):
    response = world.client_for(world.alice).post(reverse("member_list", args=["acme"]), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Invitation.objects.unscoped().exists()


def test_inviting_someone_who_has_a_pending_invitation_says_to_withdraw_it_first(world):
    client = world.client_for(world.alice)
    client.post(reverse("member_list", args=["acme"]), {"email": "dana@example.com", "role": "member"})
    response = client.post(reverse("member_list", args=["acme"]), {"email": "Dana@Example.com", "role": "admin"})
    assert response.status_code == 400
    assert "already has a pending invitation" in response.content.decode()
    assert Invitation.objects.unscoped().count() == 1


def test_an_owner_promotes_a_member_to_admin_and_back(world):
    client = world.client_for(world.alice)
    bob = _membership(world, world.bob)
    response = client.post(reverse("member_role", args=["acme", bob.pk]), {"role": "admin"}, follow=True)
    assert "is now admin" in response.content.decode()
    bob.refresh_from_db()
    assert bob.role == Role.ADMIN
    client.post(reverse("member_role", args=["acme", bob.pk]), {"role": "member"})
    bob.refresh_from_db()
    assert bob.role == Role.MEMBER


def test_the_last_owner_cannot_be_demoted(world):
    alice = _membership(world, world.alice)
    with tenant_context(world.tenant_a), pytest.raises(AppError) as refused:
        membership_role_change(membership=alice, role=Role.ADMIN, by=alice)
    assert refused.value.code == "last_owner"
    assert "only owner" in refused.value.message
    response = world.client_for(world.alice).post(
        reverse("member_role", args=["acme", alice.pk]), {"role": "member"}, follow=True
    )
    assert "at least one owner" in response.content.decode()
    alice.refresh_from_db()
    assert alice.role == Role.OWNER


def test_an_owner_can_step_down_once_there_is_another_owner(world):
    alice, bob = _membership(world, world.alice), _membership(world, world.bob)
    with tenant_context(world.tenant_a):
        membership_role_change(membership=bob, role=Role.OWNER, by=alice)
        membership_role_change(membership=alice, role=Role.ADMIN, by=alice)
        with pytest.raises(AppError) as refused:
            membership_remove(membership=bob, by=bob)
    assert refused.value.code == "last_owner"
    assert Membership.objects.unscoped().get(pk=bob.pk).role == Role.OWNER


def test_an_admin_manages_members_but_not_owners(world):
    dana = UserFactory(username="dana")
    MembershipFactory(tenant=world.tenant_a, user=dana, role=Role.ADMIN)
    client = world.client_for(dana)
    alice, bob = _membership(world, world.alice), _membership(world, world.bob)
    assert client.post(reverse("member_role", args=["acme", bob.pk]), {"role": "owner"}).status_code == 403
    assert client.post(reverse("member_role", args=["acme", alice.pk]), {"role": "member"}).status_code == 403
    assert client.post(reverse("member_remove", args=["acme", alice.pk])).status_code == 403
    client.post(reverse("member_role", args=["acme", bob.pk]), {"role": "admin"})
    assert Membership.objects.unscoped().get(pk=bob.pk).role == Role.ADMIN
    assert Membership.objects.unscoped().get(pk=alice.pk).role == Role.OWNER


def test_an_unknown_role_changes_nothing(world):
    bob = _membership(world, world.bob)
    response = world.client_for(world.alice).post(
        reverse("member_role", args=["acme", bob.pk]), {"role": "emperor"}, follow=True
    )
    assert response.status_code == 200 and "Choose owner, admin or member." in response.content.decode()
    assert Membership.objects.unscoped().get(pk=bob.pk).role == Role.MEMBER


def test_an_owner_removes_a_member_after_confirming(world):
    client = world.client_for(world.alice)
    bob = _membership(world, world.bob)
    page = client.get(reverse("member_list", args=["acme"])).content.decode()
    assert 'class="confirm"' in page and reverse("member_remove", args=["acme", bob.pk]) in page
    response = client.post(reverse("member_remove", args=["acme", bob.pk]), follow=True)
    assert "was removed" in response.content.decode()
    assert not Membership.objects.unscoped().filter(pk=bob.pk).exists()


def test_a_member_sees_the_team_without_admin_controls_and_gets_403_on_every_admin_post(world):
    client = world.client_for(world.bob)
    alice = _membership(world, world.alice)
    invitation = InvitationFactory(tenant=world.tenant_a)
    page = client.get(reverse("member_list", args=["acme"])).content.decode()
    assert "alice@example.com" in page
    for control in ("Change role", "Remove", "Send invitation", "Withdraw", invitation.email):
        assert control not in page
    posts = [
        (reverse("member_list", args=["acme"]), {"email": "eve@example.com", "role": "admin"}),
        (reverse("member_role", args=["acme", alice.pk]), {"role": "member"}),
        (reverse("member_remove", args=["acme", alice.pk]), {}),
        (reverse("invitation_revoke", args=["acme", invitation.pk]), {}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert Membership.objects.unscoped().get(pk=alice.pk).role == Role.OWNER
    assert Invitation.objects.unscoped().get(pk=invitation.pk).revoked is None


def test_it_checks_ownership(world):
    bob = _membership(world, world.bob)
    charlie = world.client_for(world.charlie)
    assert charlie.post(reverse("member_role", args=["bravo", bob.pk]), {"role": "owner"}).status_code == 404
    assert charlie.post(reverse("member_role", args=["acme", bob.pk]), {"role": "owner"}).status_code == 404
    assert Membership.objects.unscoped().get(pk=bob.pk).role == Role.MEMBER


def test_the_team_page_runs_a_fixed_number_of_queries(world, django_assert_num_queries):
    for n in range(6):
        MembershipFactory(tenant=world.tenant_a, user=UserFactory(username=f"user{n}"))
        InvitationFactory(tenant=world.tenant_a, email=f"invitee{n}@example.com")
    client = world.client_for(world.alice)
    client.get(reverse("member_list", args=["acme"]))  # warm the session
    # The same 7 with 8 members and 6 invitations as with 2: session, user, membership, the
    # sidebar's workspaces, the billing banner's subscription, members with users, invitations.
    with django_assert_num_queries(7):
        assert client.get(reverse("member_list", args=["acme"])).status_code == 200
