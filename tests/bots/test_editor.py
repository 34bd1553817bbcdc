"""The bot editor's sections: each saves on its own, refuses bad input in place, and is read-only
for members. The model chain editor stores the same model_chain JSON the API takes."""

from __future__ import annotations

import pytest
from django.urls import reverse

from bots.models import Bot
from tenants.context import tenant_context
from tests.bots.factories import BotFactory
from tests.knowledge.factories import DocumentFactory, KnowledgeBaseFactory


@pytest.fixture
def bot_a(world):
    return BotFactory(tenant=world.tenant_a, name="Support")


def url(name: str, *args: object) -> str:
    return reverse(name, args=args)


def row(provider: str, model: str = "", **fields: object) -> dict:
    values = {"provider": provider, "model": "", "model_name": "", "base_url": ""}
    if provider == "openai_compatible":
        values["model_name"] = model
    else:
        values["model"] = model
    values.update({k: str(v) for k, v in fields.items()})
    return values


def chain_post(*rows: dict, action: str = "save") -> dict:
    data = {
        "chain-TOTAL_FORMS": str(len(rows)),
        "chain-INITIAL_FORMS": str(len(rows)),
        "chain-MIN_NUM_FORMS": "0",
        "chain-MAX_NUM_FORMS": "5",
        "action": action,
    }
    for index, values in enumerate(rows):
        values = {"ORDER": str(index + 1), **values}
        data.update({f"chain-{index}-{name}": value for name, value in values.items()})
    return data


def test_an_owner_builds_a_two_entry_chain_and_the_json_is_what_the_api_stores(world, bot_a):
    client = world.client_for(world.alice)
    posted = chain_post(row("openai", "gpt-4o-mini", temperature=0.5, max_tokens=300), row("offline", "extractive"))
    response = client.post(url("bot_models", "acme", bot_a.pk), posted)
    assert response.status_code == 302
    bot_a.refresh_from_db()
    assert bot_a.model_chain == [
        {"provider": "openai", "model": "gpt-4o-mini", "params": {"temperature": 0.5, "max_tokens": 300}},
        {"provider": "offline", "model": "extractive", "params": {}},
    ]
    page = client.get(url("bot_models", "acme", bot_a.pk)).content.decode()
    assert "Primary" in page and "Fallback 1" in page
    assert "gpt-4o-mini · $0.15 in / $0.60 out per 1M tokens · 128k context" in page


def test_a_model_missing_from_the_catalog_is_an_error_on_its_row(world, bot_a):
    client = world.client_for(world.alice)
    posted = chain_post(row("offline", "extractive"), row("anthropic", "claude-imaginary-9"))
    response = client.post(url("bot_models", "acme", bot_a.pk), posted)
    assert response.status_code == 400
    page = response.content.decode()
    assert "claude-imaginary-9" in page and "not one of the available choices" in page
    bot_a.refresh_from_db()
    assert bot_a.model_chain == [{"provider": "offline", "model": "extractive", "params": {}}]


def test_the_catalog_check_names_the_models_it_knows(world):
    from django.core.exceptions import ValidationError

    from bots.validation import check_catalog_model, check_model_chain

    with pytest.raises(ValidationError) as exc:
        check_catalog_model("openai", "gpt-9-ultra")
    assert "gpt-4o-mini" in exc.value.message_dict["model"][0]
    check_catalog_model("openai_compatible", "llama3.1:8b")  # servers name their own models
    # Chains the API accepted keep validating: the catalog check is the editor's, not the chain's.
    assert check_model_chain([{"provider": "openai", "model": "gpt-9-ultra"}])[0]["model"] == "gpt-9-ultra"


def test_a_base_url_the_egress_guard_refuses_is_an_error_on_its_row(world, bot_a, settings):
    settings.TENANT_URL_ALLOWLIST = []
    client = world.client_for(world.alice)
    posted = chain_post(row("openai_compatible", "llama3", base_url="http://10.1.2.3/v1"))
    response = client.post(url("bot_models", "acme", bot_a.pk), posted)
    assert response.status_code == 400
    page = response.content.decode()
    assert "is refused" in page and "TENANT_URL_ALLOWLIST" in page
    bot_a.refresh_from_db()
    assert bot_a.model_chain[0]["provider"] == "offline"


def test_parameters_out_of_range_and_a_missing_model_name_are_field_errors(world, bot_a):
    client = world.client_for(world.alice)
    posted = chain_post(row("openai", "gpt-4o-mini", temperature=5, top_p=-1), row("openai_compatible", ""))
    response = client.post(url("bot_models", "acme", bot_a.pk), posted)
    assert response.status_code == 400
    page = response.content.decode()
    assert "less than or equal to 2" in page and "greater than or equal to 0" in page
    assert "Give the model&#x27;s name on that server." in page


def test_a_chain_of_more_than_five_rows_is_refused(world, bot_a):
    posted = chain_post(*[row("offline", "extractive") for _ in range(6)])
    posted["chain-INITIAL_FORMS"] = "0"
    response = world.client_for(world.alice).post(url("bot_models", "acme", bot_a.pk), posted)
    assert response.status_code == 400
    assert "The model chain can have at most 5 entries." in response.content.decode()


def test_removing_every_row_is_refused(world, bot_a):
    posted = chain_post(row("offline", "extractive", DELETE="on"))
    response = world.client_for(world.alice).post(url("bot_models", "acme", bot_a.pk), posted)
    assert response.status_code == 400
    assert "needs at least one entry" in response.content.decode()


def test_the_position_field_reorders_the_chain_and_removed_rows_are_dropped(world, bot_a):
    posted = chain_post(
        row("offline", "extractive"), row("openai", "gpt-4o"), row("anthropic", "claude-haiku-4-5", DELETE="on")
    )
    posted["chain-0-ORDER"], posted["chain-1-ORDER"] = "2", "1"
    assert world.client_for(world.alice).post(url("bot_models", "acme", bot_a.pk), posted).status_code == 302
    bot_a.refresh_from_db()
    assert [e["model"] for e in bot_a.model_chain] == ["gpt-4o", "extractive"]


def test_move_up_add_and_remove_buttons_reshow_the_editor_without_saving(world, bot_a):
    client = world.client_for(world.alice)
    rows = (row("offline", "extractive"), row("openai", "gpt-4o"))
    page = client.post(url("bot_models", "acme", bot_a.pk), chain_post(*rows, action="up:1")).content.decode()
    # The second row is now first: its model is the first selected option on the page.
    assert page.index('value="gpt-4o" selected') < page.index('value="offline" selected')
    page = client.post(url("bot_models", "acme", bot_a.pk), chain_post(*rows, action="add")).content.decode()
    assert 'name="chain-TOTAL_FORMS" value="3"' in page and "Fallback 2" in page
    page = client.post(url("bot_models", "acme", bot_a.pk), chain_post(*rows, action="remove:0")).content.decode()
    assert 'name="chain-TOTAL_FORMS" value="1"' in page
    bot_a.refresh_from_db()
    assert bot_a.model_chain == [{"provider": "offline", "model": "extractive", "params": {}}]


def test_an_owner_saves_the_basics_with_suggested_questions_for_the_widget(world, bot_a):
    bot_a.widget = {"primary_color": "#112233"}
    bot_a.save(update_fields=["widget"])
    client = world.client_for(world.alice)
    posted = {
        "name": "Helper",
        "status": "paused",
        "welcome_message": "Hello there",
        "suggested_questions": "How do I reset my password?\n\n  Where is my   invoice? ",
    }
    assert client.post(url("bot_detail", "acme", bot_a.pk), posted).status_code == 302
    bot_a.refresh_from_db()
    assert (bot_a.name, bot_a.status, bot_a.welcome_message) == ("Helper", "paused", "Hello there")
    # The widget designer's keys stay; the questions are stored as the widget reads them.
    assert bot_a.widget == {
        "primary_color": "#112233",
        "suggested_questions": ["How do I reset my password?", "Where is my invoice?"],
    }
    assert "How do I reset my password?" in client.get(url("bot_detail", "acme", bot_a.pk)).content.decode()


def test_too_many_suggested_questions_and_an_empty_name_are_field_errors(world, bot_a):
    posted = {"name": " ", "status": "active", "welcome_message": "Hi", "suggested_questions": "\n".join("q" * 7)}
    response = world.client_for(world.alice).post(url("bot_detail", "acme", bot_a.pk), posted)
    assert response.status_code == 400
    page = response.content.decode()
    assert "At most 6 suggested questions (you gave 7)." in page and "This field is required." in page


def policy_post(**overrides: object) -> dict:
    data = {
        "answer_policy": "general",
        "no_answer_message": "",
        "fallback_contact": "",
        "fallback_message": "Sorry",
        "max_answer_tokens": 400,
        "temperature": 0.3,
        "retrieval_k": 4,
        "blocked_topics": "crypto\nre:\\bstocks?\\b",
        "redact_output": "on",
        "eval_margin": 5,
    }
    data.update(overrides)
    return data


def test_an_owner_sets_the_answer_policy_and_what_the_bot_says_when_it_does_not_know(world, bot_a):
    client = world.client_for(world.alice)
    page = client.get(url("bot_policy", "acme", bot_a.pk)).content.decode()
    assert "Said without calling a model when the knowledge has nothing relevant." in page
    posted = policy_post(no_answer_message="That isn't in our help centre.", fallback_contact="help@acme.test")
    assert client.post(url("bot_policy", "acme", bot_a.pk), posted).status_code == 302
    bot_a.refresh_from_db()
    assert bot_a.blocked_topics == ["crypto", "re:\\bstocks?\\b"] and bot_a.retrieval_k == 4
    assert bot_a.no_answer_text() == "That isn't in our help centre. You can reach our team at help@acme.test."


def test_an_owner_turns_on_redaction_of_visitors_messages(world, bot_a):
    client = world.client_for(world.alice)
    assert "Redact visitors&#x27; messages" in client.get(url("bot_policy", "acme", bot_a.pk)).content.decode()
    assert client.post(url("bot_policy", "acme", bot_a.pk), policy_post(redact_input="on")).status_code == 302
    bot_a.refresh_from_db()
    assert bot_a.redact_input is True


def test_a_bad_regex_and_a_tiny_answer_limit_are_field_errors(world, bot_a):
    posted = policy_post(blocked_topics="re:([", max_answer_tokens=3)
    response = world.client_for(world.alice).post(url("bot_policy", "acme", bot_a.pk), posted)
    assert response.status_code == 400
    assert "greater than or equal to 16" in response.content.decode()
    response = world.client_for(world.alice).post(
        url("bot_policy", "acme", bot_a.pk), policy_post(blocked_topics="re:([")
    )
    assert response.status_code == 400 and "is not a valid regular expression" in response.content.decode()


def test_the_knowledge_section_shows_each_base_with_its_readiness_and_saves_the_choice(world, bot_a):
    kb = KnowledgeBaseFactory(tenant=world.tenant_a, name="Manuals")
    DocumentFactory(tenant=world.tenant_a, knowledge_base=kb, status="ready")
    DocumentFactory(tenant=world.tenant_a, knowledge_base=kb, status="failed")
    DocumentFactory(tenant=world.tenant_a, knowledge_base=kb, status="embedding")
    KnowledgeBaseFactory(tenant=world.tenant_b, name="Bravo secrets")
    client = world.client_for(world.alice)
    page = client.get(url("bot_knowledge", "acme", bot_a.pk)).content.decode()
    assert "3 documents" in page and "1 ready" in page and "1 failed" in page and "1 processing" in page
    assert "Bravo secrets" not in page
    assert client.post(url("bot_knowledge", "acme", bot_a.pk), {"knowledge_bases": [kb.pk]}).status_code == 302
    with tenant_context(world.tenant_a):
        assert list(bot_a.knowledge_bases.all()) == [kb]


def test_members_see_every_section_read_only_and_get_403_on_post(world, bot_a):
    client = world.client_for(world.bob)
    for name, button in (
        ("bot_detail", "Save basics"),
        ("bot_knowledge", "Save knowledge bases"),
        ("bot_models", "Save model chain"),
        ("bot_policy", "Save answer policy"),
        ("prompt_list", "Save version"),
    ):
        response = client.get(url(name, "acme", bot_a.pk))
        assert response.status_code == 200
        page = response.content.decode()
        assert button not in page and "Test connection" not in page
        assert client.post(url(name, "acme", bot_a.pk), {}).status_code == 403
    assert client.post(url("bot_key_add", "acme", bot_a.pk), {"provider": "openai", "api_key": "x"}).status_code == 403
    bot_a.refresh_from_db()
    assert bot_a.name == "Support"


def test_another_tenants_bot_is_a_404_in_every_section(world, bot_a):
    charlie = world.client_for(world.charlie)
    for name in ("bot_detail", "bot_knowledge", "bot_models", "bot_policy", "prompt_compare"):
        assert charlie.get(url(name, "bravo", bot_a.pk)).status_code == 404
    assert charlie.post(url("bot_models", "bravo", bot_a.pk), chain_post(row("offline"))).status_code == 404


def test_provider_keys_are_managed_from_the_model_chain_section_and_never_shown(world, bot_a):
    client = world.client_for(world.alice)
    posted = {"provider": "openai", "api_key": "sk-abcdef-9876"}
    assert client.post(url("bot_key_add", "acme", bot_a.pk), posted).status_code == 302
    page = client.get(url("bot_models", "acme", bot_a.pk)).content.decode()
    assert "…9876" in page and "sk-abcdef" not in page
    response = client.post(url("bot_key_add", "acme", bot_a.pk), {"provider": "openai", "api_key": "has space"})
    assert response.status_code == 400 and "no spaces" in response.content.decode()
    with tenant_context(world.tenant_a):
        from bots.models import ProviderCredential

        credential = ProviderCredential.objects.get()
    assert client.post(url("bot_key_delete", "acme", bot_a.pk, credential.pk)).status_code == 302
    with tenant_context(world.tenant_a):
        assert not ProviderCredential.objects.exists()


def test_the_bot_list_shows_chains_and_knowledge_in_a_fixed_number_of_queries(world, django_assert_max_num_queries):
    kb = KnowledgeBaseFactory(tenant=world.tenant_a)
    for index in range(6):
        bot = BotFactory(tenant=world.tenant_a, name=f"Bot {index}")
        bot.knowledge_bases.add(kb)
    client = world.client_for(world.alice)
    client.get(url("bot_list", "acme"))  # warm the session and the plan caches
    # Session, user, tenant, membership, sidebar memberships, billing banner, the bots: not per bot.
    with django_assert_max_num_queries(7):
        response = client.get(url("bot_list", "acme"))
    page = response.content.decode()
    assert page.count("extractive") == 6 and "Create a bot" in page


def test_an_empty_bot_list_says_what_to_do_next(world):
    page = world.client_for(world.alice).get(url("bot_list", "acme")).content.decode()
    assert "No bots yet" in page and "Create a bot" in page
    page = world.client_for(world.bob).get(url("bot_list", "acme")).content.decode()
    assert "An admin or owner of this workspace can create the first bot." in page
    assert "Create bot" not in page


def test_a_bad_new_bot_is_refused_in_place(world):
    response = world.client_for(world.alice).post(url("bot_list", "acme"), {"name": "", "system_prompt": "Hi"})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    with tenant_context(world.tenant_a):
        assert not Bot.objects.exists()


def test_two_versions_are_compared_side_by_side_with_marks_not_only_colour(world, bot_a):
    client = world.client_for(world.alice)
    client.post(url("prompt_list", "acme", bot_a.pk), {"text": "Be brief.\nAlways cite.", "note": "v2"})
    page = client.get(url("prompt_compare", "acme", bot_a.pk) + "?old=1&new=2").content.decode()
    # v1's one line became v2's first line; v2's second line is new.
    assert "Changed: </span>You are the helpful assistant" in page and "Changed: </span>Be brief." in page
    assert "Added: </span>Always cite." in page
    assert "2 lines differ between v1 and v2" in page


def test_the_prompt_versions_and_knowledge_lists_do_not_grow_queries_per_row(
    world, bot_a, django_assert_max_num_queries
):
    from tests.bots.factories import PromptVersionFactory

    for number in range(2, 9):
        PromptVersionFactory(tenant=world.tenant_a, bot=bot_a, number=number, text=f"Version {number}")
    for index in range(5):
        kb = KnowledgeBaseFactory(tenant=world.tenant_a, name=f"Base {index}")
        DocumentFactory(tenant=world.tenant_a, knowledge_base=kb)
    client = world.client_for(world.alice)
    client.get(url("prompt_list", "acme", bot_a.pk))  # warm the session and the plan caches
    # The shell's own reads, the bot, then one query per list: never one per version or base.
    with django_assert_max_num_queries(9):
        assert client.get(url("prompt_list", "acme", bot_a.pk)).content.decode().count("Publish v") == 7
    with django_assert_max_num_queries(9):
        assert client.get(url("bot_knowledge", "acme", bot_a.pk)).content.decode().count("1 ready") == 5


def test_the_service_checks_suggested_questions_wherever_they_come_from(world, in_tenant_a, bot_a):
    from django.core.exceptions import ValidationError

    from bots import services

    with pytest.raises(ValidationError) as exc:
        services.bot_update(bot=bot_a, widget={"suggested_questions": [f"Question {n}?" for n in range(7)]})
    assert "At most 6 suggested questions" in exc.value.message_dict["widget_suggested_questions"][0]
    services.bot_update(bot=bot_a, widget={"position": "left", "suggested_questions": "  One?  \n\nTwo?"})
    bot_a.refresh_from_db()
    assert bot_a.widget == {"position": "left", "suggested_questions": ["One?", "Two?"]}
