"""The Corrections tab and "fix this answer": admins write, edit (a version each), disable, delete
and import corrections; members look; another tenant's message or correction is a 404."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from bots.correction_services import correction_create
from bots.models import CORRECTION_ANSWER_MAX, Bot, Correction
from conversations.models import Message
from tenants.context import tenant_context
from tests.bots.factories import BotFactory, CorrectionFactory
from tests.conversations.factories import ConversationFactory, MessageFactory


def url(name: str, *args: object) -> str:
    return reverse(name, args=args)


@pytest.fixture
def bot_a(world):
    return BotFactory(tenant=world.tenant_a, name="Support")


@pytest.fixture
def answer_a(world, bot_a):
    conversation = ConversationFactory(tenant=world.tenant_a, bot=bot_a)
    MessageFactory(
        tenant=world.tenant_a, conversation=conversation, role=Message.Role.USER, content="Weekend delivery?"
    )
    return MessageFactory(tenant=world.tenant_a, conversation=conversation, content="Sorry, I don't know.")


def _corrections(tenant) -> list[tuple[str, str, int, bool]]:
    with tenant_context(tenant):
        return list(Correction.objects.order_by("id").values_list("question", "answer", "version", "enabled"))


def test_an_admin_fixes_an_answer_from_the_conversation_with_the_question_prefilled(world, answer_a):
    client = world.client_for(world.alice)
    detail = client.get(url("conversation_detail", "acme", answer_a.conversation_id)).content.decode()
    fix = url("message_correct", "acme", answer_a.conversation_id, answer_a.pk)
    assert f'href="{fix}"' in detail
    form = client.get(fix).content.decode()
    assert "Weekend delivery?</textarea>" in form and "Sorry, I don&#x27;t know.</textarea>" in form
    response = client.post(fix, {"question": "Weekend delivery?", "answer": "Saturdays only.", "source_url": ""})
    assert response.status_code == 302
    assert _corrections(world.tenant_a) == [("Weekend delivery?", "Saturdays only.", 1, True)]
    assert Bot.objects.unscoped().get(pk=answer_a.conversation.bot_id).has_corrections is True


def test_a_correction_on_another_tenants_message_is_a_404(world, answer_a):
    fix = url("message_correct", "bravo", answer_a.conversation_id, answer_a.pk)
    response = world.client_for(world.charlie).post(fix, {"question": "Q?", "answer": "A."})
    assert response.status_code == 404
    assert _corrections(world.tenant_a) == [] and _corrections(world.tenant_b) == []


def test_a_member_cannot_write_a_correction_and_sees_no_button(world, bot_a, answer_a):
    with tenant_context(world.tenant_a):
        correction = CorrectionFactory(tenant=world.tenant_a, bot=bot_a)
    client = world.client_for(world.bob)
    detail = client.get(url("conversation_detail", "acme", answer_a.conversation_id)).content.decode()
    listing = client.get(url("correction_list", "acme", bot_a.pk)).content.decode()
    assert "Fix this answer" not in detail
    assert "Write a correction" not in listing and "Disable" not in listing and "Re-test" in listing
    refused = [
        client.get(url("message_correct", "acme", answer_a.conversation_id, answer_a.pk)),
        client.post(url("correction_list", "acme", bot_a.pk), {"question": "Q?", "answer": "A."}),
        client.post(url("correction_edit", "acme", bot_a.pk, correction.pk), {"question": "Q?", "answer": "B."}),
        client.post(url("correction_toggle", "acme", bot_a.pk, correction.pk)),
        client.post(url("correction_delete", "acme", bot_a.pk, correction.pk)),
        client.post(url("correction_import", "acme", bot_a.pk)),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert len(_corrections(world.tenant_a)) == 1


def test_editing_a_correction_adds_a_version_and_disable_and_delete_work(world, bot_a):
    with tenant_context(world.tenant_a):
        correction = correction_create(bot=bot_a, question="Weekend delivery?", answer="Saturdays only.")
    client = world.client_for(world.alice)
    edit = url("correction_edit", "acme", bot_a.pk, correction.pk)
    client.post(edit, {"question": "Weekend delivery?", "answer": "Saturdays and Sundays.", "source_url": ""})
    page = client.get(edit).content.decode()
    assert "v2" in page and "v1" in page and "Saturdays only." in page
    client.post(url("correction_toggle", "acme", bot_a.pk, correction.pk))
    assert _corrections(world.tenant_a) == [("Weekend delivery?", "Saturdays and Sundays.", 2, False)]
    assert Bot.objects.unscoped().get(pk=bot_a.pk).has_corrections is False
    client.post(url("correction_delete", "acme", bot_a.pk, correction.pk))
    assert _corrections(world.tenant_a) == []


def test_oversized_fields_and_a_private_source_link_are_refused_in_place(world, bot_a):
    client = world.client_for(world.alice)
    response = client.post(
        url("correction_list", "acme", bot_a.pk),
        {"question": "Q" * 1001, "answer": "A" * (CORRECTION_ANSWER_MAX + 1), "source_url": "http://127.0.0.1/admin"},
    )
    body = response.content.decode()
    assert response.status_code == 400
    assert "at most 1000 characters" in body and f"at most {CORRECTION_ANSWER_MAX} characters" in body
    response = client.post(
        url("correction_list", "acme", bot_a.pk),
        {"question": "Q?", "answer": "A.", "source_url": "http://127.0.0.1/admin"},
    )
    assert response.status_code == 400
    assert "This link is refused" in response.content.decode()
    assert _corrections(world.tenant_a) == []


def test_a_csv_import_reports_bad_lines_by_number_and_imports_nothing_until_all_are_good(world, bot_a):
    client = world.client_for(world.alice)
    bad = SimpleUploadedFile(
        "faq.csv",
        b"question,answer,source_url\nWeekend delivery?,Saturdays only.\n,No question\nGift cards?\n"
        + b"Refunds?,Within 30 days.,ftp://example.com/x\n",
    )
    response = client.post(url("correction_import", "acme", bot_a.pk), {"file": bad})
    body = response.content.decode()
    assert response.status_code == 400
    assert "Line 3: Write the question visitors ask." in body
    assert "Line 4: expected question,answer[,source_url], found 1 columns." in body
    assert "Line 5: This link is refused" in body
    assert _corrections(world.tenant_a) == []
    good = SimpleUploadedFile("faq.csv", b'Weekend delivery?,Saturdays only.\nGift cards?,"Yes, from $10."\n')
    response = client.post(url("correction_import", "acme", bot_a.pk), {"file": good})
    assert response.status_code == 302
    assert [q for q, *_ in _corrections(world.tenant_a)] == ["Weekend delivery?", "Gift cards?"]


def test_the_corrections_list_reads_in_a_fixed_number_of_queries(world, bot_a, django_assert_max_num_queries):
    with tenant_context(world.tenant_a):
        for _ in range(5):
            CorrectionFactory(tenant=world.tenant_a, bot=bot_a, uses=3)
    client = world.client_for(world.alice)
    with django_assert_max_num_queries(12):
        response = client.get(url("correction_list", "acme", bot_a.pk))
    assert response.content.decode().count("3 questions") == 5


def test_re_test_opens_the_playground_with_the_question_prefilled(world, bot_a):
    with tenant_context(world.tenant_a):
        CorrectionFactory(tenant=world.tenant_a, bot=bot_a, question="Weekend delivery?")
    client = world.client_for(world.alice)
    listing = client.get(url("correction_list", "acme", bot_a.pk)).content.decode()
    retest = f"{url('playground', 'acme')}?bot={bot_a.pk}&amp;q=Weekend%20delivery%3F"
    assert retest in listing
    playground = client.get(f"{url('playground', 'acme')}?bot={bot_a.pk}&q=Weekend+delivery%3F").content.decode()
    assert "required>Weekend delivery?</textarea>" in playground
