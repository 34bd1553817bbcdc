"""The webhooks journey in a real browser: an owner adds an endpoint, copies the secret shown
once, sends a test event that the live worker delivers to a local receiver, and sees it in the log."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from billing.services import subscription_comp
from tests.dashboard.conftest import shots
from tests.webhooks.receiver import receiver

pytestmark = [pytest.mark.browser]


def test_an_owner_adds_an_endpoint_copies_its_secret_and_sees_a_test_event_in_the_log(
    transactional_db, world, signed_in, live_daphne, live_worker
):
    subscription_comp(tenant=world.tenant_a, plan_slug="pro")
    page = signed_in(world.alice, permissions=["clipboard-read", "clipboard-write"])
    with receiver() as hook:
        page.goto(f"{live_daphne}/t/acme/settings/")
        page.get_by_role("link", name="Manage webhooks").click()
        expect(page.get_by_role("heading", name="Webhooks", level=1)).to_be_visible()

        page.get_by_label("Endpoint URL").fill(hook.url)
        page.get_by_label("Description").fill("Our CRM")
        page.get_by_label("lead.created", exact=False).check()
        page.get_by_role("button", name="Add endpoint").click()

        secret_box = page.get_by_test_id("new-secret")
        expect(secret_box).to_be_visible()
        page.get_by_role("button", name="Copy secret").click()
        # The button says "Copied" for 2 s only; what matters is what reached the clipboard.
        page.wait_for_function("async () => (await navigator.clipboard.readText()).startsWith('whsec_')")
        secret = page.evaluate("() => navigator.clipboard.readText()")
        assert secret.startswith("whsec_")
        shots(page, "webhooks-secret")

        page.get_by_role("link", name=f"Open {hook.url}").click()
        expect(page.get_by_text("Nothing sent yet")).to_be_visible()
        assert secret not in page.content()  # shown once only
        page.get_by_role("button", name="Send test event").click()
        row = page.get_by_test_id("log-row").first
        expect(row).to_contain_text("webhook.test", timeout=60_000)
        expect(row).to_contain_text("200")
        shots(page, "webhooks-log")

    [received] = hook.received
    assert received.event["type"] == "webhook.test" and received.verified_with(secret)
    assert page.errors == []
