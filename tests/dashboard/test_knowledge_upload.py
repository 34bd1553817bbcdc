"""Journey 1 in a real browser: sign up, create a knowledge base, drop two files at once and watch
both reach Ready (live worker), see an oversized file refused before it is sent, then search."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from billing.models import Plan
from knowledge.models import Document
from tests.dashboard.conftest import DESKTOP, shots

HOURS = b"# Opening hours\n\nThe shop is open from nine to five on weekdays and closed on Sundays.\n"
RETURNS = b"# Returns\n\nYou can return any item within thirty days for a full refund.\n"


def _sign_up(page: object, base: str) -> None:
    page.goto(f"{base}/accounts/signup/")
    shots(page, "knowledge-signup")
    page.fill("input[name=email]", "founder@example.com")
    page.fill("input[name=password1]", "a-strong passphrase 42")
    page.fill("input[name=password2]", "a-strong passphrase 42")
    page.fill("input[name=organisation]", "Drop Co")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/t/drop-co/")


@pytest.mark.browser
def test_a_new_user_drops_two_files_watches_both_get_ready_and_searches(
    transactional_db, browser, live_daphne, live_worker
):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.post_data or "") if r.method == "POST" else None)
    _sign_up(page, live_daphne)

    page.get_by_role("link", name="Knowledge", exact=True).click()
    expect(page.get_by_text("No knowledge bases yet")).to_be_visible()
    shots(page, "knowledge-list-empty")
    page.get_by_label("Name").fill("Help centre")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/t/drop-co/knowledge/\d+/$"))
    expect(page.get_by_role("heading", name="Help centre", level=1)).to_be_visible()
    shots(page, "knowledge-base-empty")

    # Both files go through the drop zone's own (multiple) file input.
    page.locator(".dropzone input[type=file]").set_input_files(
        [
            {"name": "hours.md", "mimeType": "text/markdown", "buffer": HOURS},
            {"name": "returns.txt", "mimeType": "text/plain", "buffer": RETURNS},
        ]
    )
    rows = page.locator("#documents tr[data-document]")
    rows.nth(1).wait_for()
    shots(page, "knowledge-base-processing")
    for name in ("hours.md", "returns.txt"):
        row = page.locator("#documents tr[data-document]", has_text=name)
        row.and_(page.locator("[data-status=ready]")).wait_for(timeout=180_000)
        expect(row.get_by_text("Ready", exact=True).first).to_be_visible()
    expect(page.locator("#upload-queue li")).to_have_count(0)
    assert page.locator("#documents[hx-trigger]").count() == 0, "polling stops once every row is final"
    shots(page, "knowledge-base-ready")

    # A file over the plan's per-file limit is refused here, before any upload starts.
    Plan.objects.update(max_upload_bytes=1024 * 1024)
    page.reload()
    posts_before = len(uploads)
    page.locator(".dropzone input[type=file]").set_input_files(
        [{"name": "manual.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n" + b"0" * (2 * 1024 * 1024)}]
    )
    refused = page.locator("#upload-queue li.is-refused", has_text="manual.pdf")
    refused.wait_for()
    expect(refused).to_contain_text("is 2.0 MB; your plan allows 1.0 MB per file")
    assert len(uploads) == posts_before
    assert Document.objects.unscoped().count() == 2
    shots(page, "knowledge-base-refused")

    page.get_by_label("Question").fill("When is the shop open?")
    page.get_by_role("button", name="Search").click()
    hit = page.locator("#search-results [data-testid=hit]").first
    hit.wait_for()
    assert "Opening hours" in hit.inner_text() or "hours.md" in hit.inner_text()
    for score in ("vector", "keyword", "fused"):
        assert hit.locator(f"[data-score={score}]").inner_text().strip() != ""
    expect(page.get_by_test_id("search-summary")).to_be_visible()
    shots(page, "knowledge-search")

    # The same search as a plain page (no script needed).
    page.goto(page.url.rstrip("/") + "/search/?q=refund")
    assert page.locator("[data-testid=hit]").count() >= 1
    shots(page, "knowledge-search-page")
    page.get_by_role("link", name="Knowledge", exact=True).first.click()
    expect(page.locator("tr[data-kb='Help centre']").get_by_text("All ready")).to_be_visible()
    shots(page, "knowledge-list")
    assert errors == []
    context.close()
