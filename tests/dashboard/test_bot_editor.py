"""The bot editor in a real browser on a live daphne: create a bot, build a two-entry model chain
and test both connections (journey 2, first half), then edit the prompt, compare two versions side
by side, publish and roll back (journey 4). Screenshots of every page and tab."""

from __future__ import annotations

import socket

import pytest
from playwright.sync_api import expect

from tenants.models import Role
from tests.dashboard.conftest import shots
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.knowledge.factories import DocumentFactory, KnowledgeBaseFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def acme(transactional_db):
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def owner(acme):
    user = UserFactory(username="olga", email="olga@example.com")
    MembershipFactory(tenant=acme, user=user, role=Role.OWNER)
    return user


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_bot(page, live_daphne: str, name: str) -> None:
    page.goto(f"{live_daphne}/t/acme/bots/")
    expect(page.get_by_role("heading", name="No bots yet")).to_be_visible()
    shots(page, "bot-list-empty")
    page.get_by_label("Name").fill(name)
    page.get_by_label("System prompt").fill("You are the assistant of Acme.\nAnswer briefly.")
    page.get_by_role("button", name="Create bot").click()
    page.get_by_role("heading", name=name).wait_for()


def test_an_owner_builds_a_two_entry_chain_and_tests_both_connections(acme, owner, signed_in, live_daphne):
    manuals = KnowledgeBaseFactory(tenant=acme, name="Manuals")
    for status in ("ready", "ready", "failed"):
        DocumentFactory(tenant=acme, knowledge_base=manuals, status=status)
    page = signed_in(owner)
    create_bot(page, live_daphne, "Support bot")
    shots(page, "bot-editor-basics")
    page.get_by_label("Suggested questions").fill("How do I reset my password?\nWhere is my invoice?")
    page.get_by_role("button", name="Save basics").click()
    page.get_by_text("Basics saved.").wait_for()

    tabs = page.get_by_role("navigation", name="Bot editor sections")
    tabs.get_by_role("link", name="Knowledge").click()
    choice = page.get_by_role("listitem").filter(has_text="Manuals")
    assert (
        "3 documents" in choice.inner_text() and "2 ready" in choice.inner_text() and "1 failed" in choice.inner_text()
    )
    choice.get_by_label("Manuals").check()
    page.get_by_role("button", name="Save knowledge bases").click()
    page.get_by_text("Knowledge bases saved.").wait_for()
    shots(page, "bot-editor-knowledge")
    tabs.get_by_role("link", name="Answer policy").click()
    expect(page.get_by_text("Mask emails, phone numbers")).to_be_visible()
    shots(page, "bot-editor-policy")

    dead_url = f"http://127.0.0.1:{closed_port()}/v1"
    with FakeOpenAI(api_key="not-needed") as server:
        tabs.get_by_role("link", name="Model chain").click()
        rows = page.locator("[data-chain-row]")
        primary = rows.nth(0)
        primary.get_by_label("Provider").select_option("openai_compatible")
        # The row shows only what an OpenAI-compatible server needs.
        assert (
            primary.get_by_label("Model name").is_visible()
            and not primary.get_by_label("Model", exact=True).is_visible()
        )
        primary.get_by_label("Model name").fill("llama3")
        primary.get_by_label("Base URL").fill(server.base_url)
        page.get_by_role("button", name="Add a fallback").click()
        fallback = page.locator("[data-chain-row]").nth(1)
        expect(fallback.get_by_role("group", name="Fallback 1")).to_be_visible()
        fallback.get_by_label("Provider").select_option("openai_compatible")
        fallback.get_by_label("Model name").fill("mistral")
        fallback.get_by_label("Base URL").fill(dead_url)
        page.get_by_role("button", name="Save model chain").click()
        page.get_by_text("Model chain saved.").wait_for()

        rows = page.locator("[data-chain-row]")
        rows.nth(0).get_by_role("button", name="Test connection").click()
        ok = page.locator("#test-result-0")
        ok.get_by_text("Connected").wait_for()
        assert ok.inner_text().strip().endswith("ms")
        rows.nth(1).get_by_role("button", name="Test connection").click()
        failed = page.locator("#test-result-1")
        failed.get_by_text("Could not reach").wait_for()
        assert f"Could not reach {dead_url}: connection refused." in failed.inner_text()
        assert any(r.body.get("model") == "llama3" for r in server.requests)
        shots(page, "bot-editor-models")

    page.goto(f"{live_daphne}/t/acme/bots/")
    row = page.get_by_role("row", name="Support bot")
    assert "llama3" in row.inner_text() and "mistral" in row.inner_text()
    expect(row.get_by_role("cell").nth(3)).to_have_text("1")  # knowledge bases
    shots(page, "bot-list")
    assert page.errors == []


def test_an_owner_edits_the_prompt_compares_publishes_and_rolls_back(owner, signed_in, live_daphne):
    page = signed_in(owner)
    create_bot(page, live_daphne, "Sales bot")
    page.get_by_role("navigation", name="Bot editor sections").get_by_role("link", name="Prompt versions").click()
    page.get_by_label("System prompt").fill("You are the assistant of Acme.\nAnswer briefly, and cite a source.")
    page.get_by_label("Note").fill("Ask for sources")
    page.get_by_role("button", name="Save version").click()
    page.get_by_text("Version 2 saved.").wait_for()
    versions = page.get_by_role("table", name="Prompt versions, newest first")
    expect(versions.get_by_role("row").nth(1)).to_contain_text("Draft")
    shots(page, "bot-editor-prompts")

    page.get_by_role("link", name="Compare two versions").click()
    table = page.get_by_test_id("side-by-side")
    table.wait_for()
    changed = table.locator("tr.diff-changed")
    expect(changed).to_have_count(1)
    expect(changed.locator("td.old")).to_contain_text("Answer briefly.")
    assert "Answer briefly, and cite a source." in changed.locator("td.new").inner_text()
    # Not colour alone: a mark, and words for screen readers.
    assert changed.locator("td.new .sr-only").inner_text().strip() == "Changed:"
    shots(page, "bot-editor-prompt-compare")

    page.get_by_role("button", name="Publish v2").click()
    page.wait_for_url("**/prompts/")
    expect(versions.get_by_role("row").nth(1)).to_contain_text("Live")
    page.get_by_role("button", name="Roll back to v1").click()
    page.wait_for_url("**/prompts/")
    rows = versions.get_by_role("row")
    assert "Live" in rows.nth(2).inner_text() and "Published before" in rows.nth(1).inner_text()
    expect(page.locator(".history")).to_contain_text("Rolled back v1 (was v2)")
    shots(page, "bot-editor-prompts-rolled-back")

    page.get_by_role("link", name="v2", exact=True).click()
    page.get_by_role("heading", name="Version 2").wait_for()
    shots(page, "bot-editor-prompt-detail")
    page.get_by_role("navigation", name="Bot editor sections").get_by_role("link", name="Evaluation").click()
    shots(page, "bot-editor-evaluation")
    assert page.errors == []
