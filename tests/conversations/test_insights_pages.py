"""The overview on the workspace home and the conversations explorer with its export: filters
validated in place, tenant isolation, pinned query counts, and exports (empty, filtered, large)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.urls import reverse
from django.utils import timezone

from conversations.insights.rollups import rollup_day
from conversations.models import NO_ANSWER_MODEL, Conversation, Message
from tests.bots.factories import BotFactory
from tests.conversations.factories import ConversationFactory, DailyRollupFactory, MessageFactory


def chunks_of(response) -> list[bytes]:
    """The streamed body's chunks, read as daphne reads them (an async iterator), from this thread."""

    async def collect() -> list[bytes]:
        return [chunk async for chunk in response.streaming_content]

    return async_to_sync(collect)()


def content_of(response) -> str:
    return b"".join(chunks_of(response)).decode()


@pytest.fixture
def acme_today(world):
    """Today, acme's "Support" bot: a widget conversation about passwords (one thumbs-down "I don't
    know"), an API one about invoices, and a playground test. Bravo has one conversation of its own."""
    tenant = world.tenant_a
    bot = BotFactory(tenant=tenant, name="Support")
    now = timezone.now()
    widget = ConversationFactory(tenant=tenant, bot=bot, visitor_id="w1", channel=Conversation.Channel.WIDGET)
    MessageFactory(tenant=tenant, conversation=widget, role="user", content="How do I reset my password?", created=now)
    MessageFactory(tenant=tenant, conversation=widget, content="Click Forgot password.", feedback="up", created=now)
    MessageFactory(tenant=tenant, conversation=widget, role="user", content="Where is the office?", created=now)
    MessageFactory(
        tenant=tenant, conversation=widget, content="I don't know.", model=NO_ANSWER_MODEL, feedback="down", created=now
    )
    api = ConversationFactory(tenant=tenant, bot=bot, visitor_id="a1", channel=Conversation.Channel.API)
    MessageFactory(tenant=tenant, conversation=api, role="user", content="Send my invoices", created=now)
    MessageFactory(tenant=tenant, conversation=api, content="Invoices are under Billing.", created=now)
    playground = ConversationFactory(tenant=tenant, bot=bot, channel=Conversation.Channel.PLAYGROUND)
    MessageFactory(tenant=tenant, conversation=playground, role="user", content="my password test", created=now)
    bravo = ConversationFactory(tenant=world.tenant_b, bot=BotFactory(tenant=world.tenant_b))
    MessageFactory(tenant=world.tenant_b, conversation=bravo, role="user", content="bravo password secret", created=now)
    rollup_day(day=now.astimezone(UTC).date())
    return bot


# --- The overview -----------------------------------------------------------------------------


def test_the_overview_shows_todays_counts_from_the_rollups(acme_today, world):
    response = world.client_for(world.bob).get(reverse("tenant_home", args=["acme"]))

    overview = response.context["overview"]
    assert (overview.totals.conversations, overview.totals.messages, overview.totals.questions) == (2, 6, 3)
    assert (overview.totals.answered, overview.totals.unanswered) == (2, 1)
    assert overview.totals.answer_rate == pytest.approx(66.7)
    assert overview.totals.satisfaction == 50.0
    assert [q.text for q in overview.top_questions] == [
        "how do i reset my password",
        "send my invoices",
        "where is the office",
    ]
    assert [u.question for u in overview.unanswered] == ["Where is the office?"]
    assert len(overview.points) == 30
    html = response.content.decode()
    assert '<title id="chart-messages-title">Messages per day</title>' in html
    assert "Messages per day: the numbers" in html
    today = timezone.now().astimezone(UTC).strftime("%b %d")
    assert f"<title>{today}: 6</title></rect>" in html  # today's bar, with its figure
    assert f'<tr><th scope="row">{today}</th><td>6</td></tr>' in html  # and in the table
    assert "Get started" in html  # the onboarding checklist stays above


def test_the_overview_filters_by_bot_and_range(acme_today, world):
    other = BotFactory(tenant=world.tenant_a, name="Sales")
    client = world.client_for(world.alice)

    response = client.get(reverse("tenant_home", args=["acme"]), {"range": "7", "bot": other.pk})

    assert response.status_code == 200
    assert response.context["overview"].totals.messages == 0
    assert len(response.context["overview"].points) == 7


@pytest.mark.parametrize("query", [{"range": "5"}, {"range": "all"}, {"bot": "nope"}])
def test_a_bad_overview_filter_is_a_400_with_the_error_in_place(world, query):
    response = world.client_for(world.alice).get(reverse("tenant_home", args=["acme"]), query)

    assert response.status_code == 400
    assert b'class="errorlist"' in response.content
    assert "overview" not in response.context


def test_another_tenants_bot_is_not_a_choice_on_the_overview(world):
    bravo_bot = BotFactory(tenant=world.tenant_b)
    response = world.client_for(world.alice).get(reverse("tenant_home", args=["acme"]), {"bot": bravo_bot.pk})

    assert response.status_code == 400
    assert b"That bot is not in this workspace" in response.content


def test_the_overview_reads_rollups_in_a_fixed_number_of_queries(world, django_assert_num_queries):
    bot = BotFactory(tenant=world.tenant_a)
    today = timezone.now().astimezone(UTC).date()
    for n in range(30):
        DailyRollupFactory(tenant=world.tenant_a, bot=bot, day=today - timedelta(days=n), messages=n, answered=n)
    client = world.client_for(world.alice)
    client.get(reverse("tenant_home", args=["acme"]))
    # 11 for the shell and the checklist (tests/project/test_onboarding.py), then the overview's 11:
    # the rollups, the top questions, the latest unanswered; usage through billing's quota interface
    # (subscription, message counter, bots, documents, storage, invitations, members); the bot choices.
    with django_assert_num_queries(22):
        client.get(reverse("tenant_home", args=["acme"]), {"range": "90"})
    for n in range(30, 90):
        DailyRollupFactory(tenant=world.tenant_a, bot=BotFactory(tenant=world.tenant_a), day=today - timedelta(days=n))
    with django_assert_num_queries(22):
        response = client.get(reverse("tenant_home", args=["acme"]), {"range": "90"})
    assert response.context["overview"].totals.messages == sum(range(30))


# --- The explorer -----------------------------------------------------------------------------


def test_search_finds_words_in_messages_of_this_workspace_only(acme_today, world):
    response = world.client_for(world.bob).get(reverse("conversation_list", args=["acme"]), {"q": "password"})

    assert response.status_code == 200
    conversations = response.context["conversations"]
    assert [c.channel for c in conversations] == ["widget"]  # not the playground's, not bravo's


def test_the_explorer_filters_by_channel_feedback_and_unanswered(acme_today, world):
    client = world.client_for(world.bob)
    url = reverse("conversation_list", args=["acme"])

    def channels(**query):
        return sorted(c.channel for c in client.get(url, query).context["conversations"])

    assert channels() == ["api", "widget"]
    assert channels(channel="api") == ["api"]
    assert channels(channel="all") == ["api", "playground", "widget"]
    assert channels(feedback="down") == ["widget"]
    assert channels(unanswered="on") == ["widget"]
    assert channels(q="invoices", channel="widget") == []


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"start": "2026-02-10", "end": "2026-02-01"}, b"The end date is before the start date."),
        ({"start": "not a date"}, b"Enter a valid date."),
        ({"start": "2020-01-01", "end": "2026-01-01"}, b"Pick at most 366 days"),
        ({"channel": "sms"}, b"Select a valid choice."),
    ],
)
def test_a_bad_explorer_filter_is_a_400_with_the_error_in_place(world, query, error):
    client = world.client_for(world.bob)
    for name in ("conversation_list", "conversation_export_csv"):
        response = client.get(reverse(name, args=["acme"]), query)
        assert response.status_code == 400
        assert error in response.content


def test_the_explorer_runs_a_fixed_number_of_queries(world, django_assert_num_queries):
    for n in range(20):
        conversation = ConversationFactory(tenant=world.tenant_a, channel="widget")
        MessageFactory.create_batch(2, tenant=world.tenant_a, conversation=conversation, content=f"refund {n}")
    client = world.client_for(world.bob)
    client.get(reverse("conversation_list", args=["acme"]))
    # Session, user, membership, the conversations (search and filters in one query), the bot
    # choices of the filter, the sidebar's workspaces and the banner's subscription.
    with django_assert_num_queries(7):
        response = client.get(reverse("conversation_list", args=["acme"]), {"q": "refund", "channel": "widget"})
    assert len(response.context["conversations"]) == 20


def test_an_export_of_nothing_is_a_csv_with_headers_only(world):
    response = world.client_for(world.bob).get(reverse("conversation_export_csv", args=["acme"]), {"q": "nothing"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert content_of(response).splitlines() == [
        "conversation_id,message_id,created,bot,channel,visitor,role,content,status,unanswered,feedback,"
        "feedback_comment,model,tokens_in,tokens_out,cost"
    ]


def test_the_export_follows_the_filters_and_the_tenant(acme_today, world):
    client = world.client_for(world.bob)

    rows = list(
        csv.DictReader(
            io.StringIO(content_of(client.get(reverse("conversation_export_csv", args=["acme"]), {"q": "password"})))
        )
    )
    assert [r["content"] for r in rows] == ["How do I reset my password?", "Click Forgot password."]
    assert {r["channel"] for r in rows} == {"widget"}

    lines = content_of(client.get(reverse("conversation_export_jsonl", args=["acme"]), {"feedback": "down"}))
    records = [json.loads(line) for line in lines.splitlines()]
    assert [(r["content"], r["unanswered"], r["bot"]) for r in records] == [("I don't know.", True, "Support")]

    everything = content_of(client.get(reverse("conversation_export_jsonl", args=["acme"])))
    assert "bravo" not in everything and "my password test" not in everything
    assert len(everything.splitlines()) == 6


def test_a_formula_in_a_message_is_not_run_by_a_spreadsheet(world):
    conversation = ConversationFactory(tenant=world.tenant_a)
    MessageFactory(tenant=world.tenant_a, conversation=conversation, role="user", content="=HYPERLINK(1)")
    body = content_of(world.client_for(world.bob).get(reverse("conversation_export_csv", args=["acme"])))
    assert "'=HYPERLINK(1)" in body


@pytest.mark.django_db(transaction=True)
def test_a_large_export_streams_every_row_in_chunks(world):
    conversation = ConversationFactory(tenant=world.tenant_a)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    Message.objects.unscoped().bulk_create(
        Message(
            tenant=world.tenant_a,
            conversation=conversation,
            role="user",
            content=f"question {n}",
            created=base + timedelta(seconds=n),
        )
        for n in range(5000)
    )
    response = world.client_for(world.bob).get(reverse("conversation_export_jsonl", args=["acme"]))

    chunks = chunks_of(response)
    assert len(chunks) >= 10  # 500 lines a chunk, not one body
    lines = b"".join(chunks).decode().splitlines()
    assert len(lines) == 5000
    assert json.loads(lines[0])["content"] == "question 0" and json.loads(lines[-1])["content"] == "question 4999"


def test_the_explorer_finds_the_conversations_answered_from_a_correction(world):
    bot = BotFactory(tenant=world.tenant_a)
    corrected = ConversationFactory(tenant=world.tenant_a, bot=bot, channel="widget")
    plain = ConversationFactory(tenant=world.tenant_a, bot=bot, channel="widget")
    MessageFactory(
        tenant=world.tenant_a,
        conversation=corrected,
        role="assistant",
        content="Yes, we ship to Norway.",
        citations=[{"n": 1, "title": "From the support team", "correction_id": 7}],
    )
    MessageFactory(
        tenant=world.tenant_a,
        conversation=plain,
        role="assistant",
        content="Shipping takes 3 days.",
        citations=[{"n": 1, "title": "Shipping"}],
    )
    response = world.client_for(world.bob).get(reverse("conversation_list", args=["acme"]), {"corrected": "on"})
    assert [c.pk for c in response.context["conversations"]] == [corrected.pk]
    export = content_of(
        world.client_for(world.bob).get(reverse("conversation_export_csv", args=["acme"]), {"corrected": "on"})
    )
    assert "Yes, we ship to Norway." in export and "Shipping takes 3 days." not in export


def test_handoffs_are_counted_in_the_rollup_and_filter_the_explorer(world):
    bot = BotFactory(tenant=world.tenant_a)
    now = timezone.now()
    handed = ConversationFactory(tenant=world.tenant_a, bot=bot, channel="widget", handoff_requested=now)
    quiet = ConversationFactory(tenant=world.tenant_a, bot=bot, channel="widget")
    for conversation in (handed, quiet):
        MessageFactory(tenant=world.tenant_a, conversation=conversation, role="user", content="Can I talk to someone?")
    rollup_day(day=now.astimezone(UTC).date())
    client = world.client_for(world.bob)
    home = client.get(reverse("tenant_home", args=["acme"]))
    assert home.context["overview"].totals.handoffs == 1
    listed = client.get(reverse("conversation_list", args=["acme"]), {"handed_off": "on"}).context["conversations"]
    assert [c.pk for c in listed] == [handed.pk]


def test_the_overview_shows_how_many_handoffs_a_person_answered_and_the_average_wait_for_the_first_reply(world):
    bot = BotFactory(tenant=world.tenant_a)
    # Early in the day (UTC), so every request falls on the same day as its rollup.
    asked = timezone.now().replace(hour=1, minute=0, second=0, microsecond=0)
    for wait in (timedelta(minutes=2), timedelta(minutes=4), None):
        conversation = ConversationFactory(
            tenant=world.tenant_a,
            bot=bot,
            channel="widget",
            handoff_requested=asked,
            first_agent_reply=asked + wait if wait else None,
        )
        MessageFactory(tenant=world.tenant_a, conversation=conversation, role="user", content="A person, please.")
    other = ConversationFactory(
        tenant=world.tenant_b, channel="widget", handoff_requested=asked, first_agent_reply=asked + timedelta(hours=1)
    )
    MessageFactory(tenant=world.tenant_b, conversation=other, role="user", content="Hello?")
    rollup_day(day=asked.astimezone(UTC).date())
    home = world.client_for(world.bob).get(reverse("tenant_home", args=["acme"]))
    totals = home.context["overview"].totals
    assert (totals.handoffs, totals.handoffs_answered, totals.first_human_reply_s) == (3, 2, 360.0)
    page = home.content.decode()
    assert '<dd data-total="handoffs-answered">2</dd>' in page
    assert '<dd data-total="first-human-reply">3 min</dd>' in page
