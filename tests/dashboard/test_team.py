"""Journey 5 in a real browser: the owner invites a member by email, the invitee opens the link
and accepts, and the member then sees the workspace's pages without edit controls and gets 403
when posting an admin action anyway."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tenants.models import Membership, Role
from tests.bots.factories import BotFactory
from tests.dashboard.conftest import shots
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.knowledge.factories import DocumentFactory, KnowledgeBaseFactory

LOGS = Path(__file__).resolve().parents[2] / "var" / "test-logs"
POST_AS_PAGE = """async (url) => {
  const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
  const body = new URLSearchParams({name: "Mine"});
  const response = await fetch(url, {method: "POST", headers: {"X-CSRFToken": token}, body});
  return response.status;
}"""


def _invitation_link(live_daphne: str, email: str) -> str:
    """The link from the invitation email, which the live daphne prints (console email backend)."""
    port = urlsplit(live_daphne).port
    log = LOGS / os.environ.get("PYTEST_XDIST_WORKER", "main") / f"daphne-{port}.log"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        for message in reversed(text.split(f"To: {email}")[1:]):
            found = re.search(r"/invitations/([\w-]+)/", message)
            if found:
                return f"{live_daphne}/invitations/{found.group(1)}/"
        time.sleep(0.2)
    raise AssertionError(f"no invitation email for {email} in {log}")


@pytest.mark.browser
def test_the_owner_invites_a_member_who_accepts_and_cannot_edit(transactional_db, signed_in, live_daphne):
    acme = TenantFactory(name="Acme", slug="acme")
    olga = UserFactory(username="olga", email="olga@example.com")
    MembershipFactory(tenant=acme, user=olga, role=Role.OWNER)
    kb = KnowledgeBaseFactory(tenant=acme, name="Handbook")
    DocumentFactory(tenant=acme, knowledge_base=kb, title="faq.md", size=46_642)
    bot = BotFactory(tenant=acme, name="Support bot")

    owner = signed_in(olga)
    owner.goto(f"{live_daphne}/t/acme/")
    owner.get_by_role("link", name="Team").click()
    shots(owner, "team-owner")
    owner.get_by_label("Email").fill("not an email")
    owner.get_by_role("button", name="Send invitation").click()
    expect(owner.get_by_text("Enter a valid email address.")).to_be_visible()
    owner.get_by_label("Email").fill("dana@example.com")
    owner.get_by_label("Role").select_option("member")
    owner.get_by_role("button", name="Send invitation").click()
    expect(owner.get_by_text("Invitation sent to dana@example.com.")).to_be_visible()
    expect(owner.locator("#invitations").get_by_text("dana@example.com")).to_be_visible()
    shots(owner, "team-invited")

    dana = UserFactory(username="dana", email="dana@example.com")
    member = signed_in(dana)
    member.goto(_invitation_link(live_daphne, "dana@example.com"))
    shots(member, "team-invitation-accept")
    member.get_by_role("button", name="Accept invitation").click()
    member.wait_for_url(f"{live_daphne}/t/acme/")
    expect(member.get_by_title("Your role in this workspace")).to_have_text("Member")
    assert Membership.objects.unscoped().get(tenant=acme, user=dana).role == Role.MEMBER

    member.get_by_role("link", name="Team").click()
    expect(member.locator("#members").get_by_text("olga@example.com")).to_be_visible()
    for control in ("Change role", "Remove", "Send invitation"):
        expect(member.get_by_role("button", name=control)).to_have_count(0)
    shots(member, "team-member")

    member.get_by_role("link", name="Knowledge", exact=True).click()
    expect(member.locator("tr[data-kb='Handbook']")).to_be_visible()
    expect(member.locator("#create")).to_have_count(0)
    shots(member, "knowledge-list-member")
    member.get_by_role("link", name="Handbook").click()
    assert member.get_by_text("faq.md").is_visible() and member.get_by_text("45.5 KB").is_visible()
    expect(member.locator("form[data-upload]")).to_have_count(0)
    expect(member.get_by_role("button", name="Delete")).to_have_count(0)
    shots(member, "knowledge-base-member")
    assert member.evaluate(POST_AS_PAGE, f"{live_daphne}/t/acme/knowledge/") == 403

    member.goto(f"{live_daphne}/t/acme/bots/{bot.pk}/")
    shots(member, "bot-member")
    assert member.evaluate(POST_AS_PAGE, f"{live_daphne}/t/acme/bots/{bot.pk}/") == 403

    member.get_by_role("link", name="Settings").click()
    assert member.get_by_text("Only admins and owners can rename").is_visible()
    expect(member.get_by_role("button", name="Save")).to_have_count(0)
    shots(member, "settings-member")
    assert member.evaluate(POST_AS_PAGE, f"{live_daphne}/t/acme/settings/") == 403

    # Back with the owner: Dana is listed, with a role control the owner may use.
    owner.reload()
    expect(owner.get_by_label("Role of dana@example.com")).to_have_value("member")
    owner.get_by_role("link", name="Settings").click()
    expect(owner.get_by_text("only owner, so you cannot leave")).to_be_visible()
    shots(owner, "settings-owner")
    assert owner.errors == [] and member.errors == []
