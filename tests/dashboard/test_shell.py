"""The dashboard's shell in a real browser: sidebar, workspace switcher, role, breadcrumbs."""

from __future__ import annotations

from tenants.models import Role
from tests.dashboard.conftest import shots
from tests.factories import MembershipFactory, TenantFactory, UserFactory


def test_an_owner_sees_the_sidebar_with_their_role_and_switches_workspace(transactional_db, signed_in, live_daphne):
    owner = UserFactory(username="olga", email="olga@example.com")
    MembershipFactory(tenant=TenantFactory(name="Acme", slug="acme"), user=owner, role=Role.OWNER)
    MembershipFactory(tenant=TenantFactory(name="Bravo", slug="bravo"), user=owner, role=Role.MEMBER)
    page = signed_in(owner)
    page.goto(f"{live_daphne}/t/acme/")
    sidebar = page.get_by_role("complementary", name="Workspace")
    assert sidebar.get_by_title("Your role in this workspace").inner_text() == "Owner"
    assert page.get_by_role("link", name="Home").get_attribute("aria-current") == "page"
    shots(page, "home")

    sidebar.locator("summary").click()
    page.get_by_role("link", name="Bravo").click()
    page.wait_for_url(f"{live_daphne}/t/bravo/")
    assert page.get_by_title("Your role in this workspace").inner_text() == "Member"
    # A member sees no API keys section (an admin's page).
    assert page.get_by_role("link", name="API keys").count() == 0
    page.get_by_role("link", name="Knowledge", exact=True).click()
    assert page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="Bravo").is_visible()
    assert page.errors == []
