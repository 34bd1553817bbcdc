"""On-duty agents: an agent marks themself on or off duty from the inbox, and the "a visitor is
waiting" email goes to the agents on duty, or to every agent when nobody is."""

from __future__ import annotations

import pytest
from django.core import mail

from conversations.handoff import handoff_request
from tenants.context import tenant_context
from tenants.models import Membership
from tests.bots.factories import HandoffSettingsFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(world):
    """alice (owner, an agent by role) and bob (a member made agent), both with an email."""
    for user, email in ((world.alice, "alice@acme.test"), (world.bob, "bob@acme.test")):
        user.email = email
        user.save()
    Membership.objects.unscoped().filter(tenant=world.tenant_a, user=world.bob).update(is_agent=True)
    return HandoffSettingsFactory(tenant=world.tenant_a, bot__tenant=world.tenant_a).bot


def _visitor_waits(world, bot, visitor: str, capture) -> None:
    with tenant_context(world.tenant_a), capture(execute=True):
        handoff_request(bot=bot, visitor_id=visitor, external_user_id="", conversation_id=None)


def test_with_nobody_on_duty_every_agent_is_emailed_and_the_inbox_says_so(
    world, team, django_capture_on_commit_callbacks
):
    _visitor_waits(world, team, "visitor-1", django_capture_on_commit_callbacks)
    assert sorted(mail.outbox[0].to) == ["alice@acme.test", "bob@acme.test"]
    page = world.client_for(world.alice).get("/t/acme/inbox/").content.decode()
    assert "Nobody is on duty, so emails about waiting visitors go to every agent (2)." in page
    assert "Go on duty" in page


def test_an_agent_goes_on_duty_from_the_inbox_and_only_agents_on_duty_are_emailed(
    world, team, django_capture_on_commit_callbacks
):
    bob = world.client_for(world.bob)
    response = bob.post("/t/acme/inbox/duty/", {"on_duty": "1"})
    assert response.status_code == 302 and response["Location"] == "/t/acme/inbox/"
    assert Membership.objects.unscoped().get(tenant=world.tenant_a, user=world.bob).on_duty
    page = bob.get("/t/acme/inbox/").content.decode()
    assert "On duty now: bob@acme.test. Emails about waiting visitors go to them." in page
    assert "Go off duty" in page

    _visitor_waits(world, team, "visitor-2", django_capture_on_commit_callbacks)
    assert mail.outbox[-1].to == ["bob@acme.test"]

    bob.post("/t/acme/inbox/duty/", {"on_duty": "0"})
    assert not Membership.objects.unscoped().get(tenant=world.tenant_a, user=world.bob).on_duty
    _visitor_waits(world, team, "visitor-3", django_capture_on_commit_callbacks)
    assert sorted(mail.outbox[-1].to) == ["alice@acme.test", "bob@acme.test"]


def test_members_without_the_agent_permission_and_outsiders_cannot_go_on_duty(world, team):
    Membership.objects.unscoped().filter(tenant=world.tenant_a, user=world.bob).update(is_agent=False)
    assert world.client_for(world.bob).post("/t/acme/inbox/duty/", {"on_duty": "1"}).status_code == 404
    assert world.client_for(world.charlie).post("/t/acme/inbox/duty/", {"on_duty": "1"}).status_code == 404
    assert not Membership.objects.unscoped().filter(tenant=world.tenant_a, on_duty=True).exists()
    assert world.client_for(world.alice).get("/t/acme/inbox/duty/").status_code == 405
