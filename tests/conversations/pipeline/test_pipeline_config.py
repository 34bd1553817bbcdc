"""A bot's turn configuration (conversations/pipeline/config.py) is remembered per process, yet
the next turn sees a change to the prompt, the knowledge bases, the plan, the provider keys or
the bot made in this process, and a change made by another process within TURN_CONFIG_TTL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings as django_settings
from django.db import transaction

from billing.models import Plan
from billing.services import plan_default, subscription_comp
from bots.models import PromptVersion
from bots.services import (
    bot_attach_knowledge_bases,
    bot_rollback_prompt,
    bot_update,
    prompt_version_create,
    provider_credential_delete,
    provider_credential_set,
)
from chatbot_saas import runtime
from conversations.pipeline.candidate import Candidate, evaluating
from conversations.pipeline.turn import turn_begin
from knowledge.services import knowledge_base_create, knowledge_base_delete
from tenants.context import tenant_context
from tests.conversations.factories import ConversationFactory
from tests.fakes.fixtures import chain
from tests.support.servers import child_env

FIRST_PROMPT = "You are the helpful assistant of this company. Answer briefly."


@pytest.fixture
def conversation(world):
    with tenant_context(world.tenant_a):
        return ConversationFactory(tenant=world.tenant_a, bot__prompt=FIRST_PROMPT)


def begin(conversation, bot=None):
    """The begin stage of a turn (what every turn of the pipeline runs first), opened and read."""
    begun = turn_begin(bot=bot or conversation.bot, conversation=conversation, text="How do refunds work?")
    assert begun.setup is not None, begun.refused
    return begun


def test_a_prompt_published_or_rolled_back_is_used_by_the_next_turn(world, conversation):
    bot = conversation.bot
    assert begin(conversation).setup.prompt_text == FIRST_PROMPT
    with tenant_context(world.tenant_a):
        prompt_version_create(bot=bot, text="You answer in one sentence.", publish=True)
    setup = begin(conversation).setup
    assert (setup.prompt_text, setup.prompt_version) == ("You answer in one sentence.", 2)
    with tenant_context(world.tenant_a):
        bot_rollback_prompt(bot=bot, version=PromptVersion.objects.get(bot=bot, number=1))
    setup = begin(conversation).setup
    assert (setup.prompt_text, setup.prompt_version) == (FIRST_PROMPT, 1)


def test_knowledge_bases_attached_detached_or_deleted_are_used_by_the_next_turn(world, conversation):
    bot = conversation.bot
    assert begin(conversation).knowledge_bases == []
    with tenant_context(world.tenant_a):
        handbook = knowledge_base_create(tenant=world.tenant_a, name="Handbook")
        faq = knowledge_base_create(tenant=world.tenant_a, name="FAQ")
        bot_attach_knowledge_bases(bot=bot, knowledge_base_ids=[handbook.pk, faq.pk])
    expected = [(handbook.pk, handbook.embedding_model), (faq.pk, faq.embedding_model)]
    assert begin(conversation).knowledge_bases == expected
    with tenant_context(world.tenant_a):
        knowledge_base_delete(knowledge_base=faq)
    assert begin(conversation).knowledge_bases == expected[:1]
    with tenant_context(world.tenant_a):
        bot_attach_knowledge_bases(bot=bot, knowledge_base_ids=[])
    assert begin(conversation).knowledge_bases == []


def test_a_plan_edited_or_changed_applies_to_the_next_turn(world, conversation):
    assert begin(conversation).setup.quota_error is None
    plan = plan_default()
    plan.max_messages_per_month = 0  # an operator closes the free plan in the admin
    plan.save()
    assert begin(conversation).setup.quota_error is not None
    subscription_comp(tenant=world.tenant_a, plan_slug="pro")  # the workspace moves to Pro
    pro = Plan.objects.get(slug="pro")
    assert pro.max_messages_per_month is None or pro.max_messages_per_month > 0
    assert begin(conversation).setup.quota_error is None


def test_a_bots_new_chain_and_the_tenants_provider_keys_are_used_by_the_next_turn(world, conversation, settings):
    settings.OPENAI_API_KEY = ""
    assert begin(conversation).setup.keys == {}  # the factory's chain is offline only
    with tenant_context(world.tenant_a):
        bot = bot_update(bot=conversation.bot, model_chain=chain("openai:gpt-4o-mini"))
    assert begin(conversation, bot).setup.keys["openai"].source == "none"
    with tenant_context(world.tenant_a):
        credential = provider_credential_set(tenant=world.tenant_a, provider="openai", api_key="sk-tenant-own-key")
    key = begin(conversation, bot).setup.keys["openai"]
    assert (key.source, key.api_key) == ("tenant", "sk-tenant-own-key")
    with tenant_context(world.tenant_a):
        provider_credential_delete(credential=credential)
    assert begin(conversation, bot).setup.keys["openai"].source == "none"


def test_an_evaluation_turn_reads_the_configuration_afresh_and_leaves_the_visitors_one_alone(world, conversation):
    begin(conversation)  # remembered
    with evaluating(Candidate(prompt_text="Candidate prompt", prompt_number=7)):
        assert begin(conversation).setup.prompt_text == "Candidate prompt"
    assert begin(conversation).setup.prompt_text == FIRST_PROMPT
    assert runtime.turn_config(conversation.bot.tenant_id, conversation.bot.pk)[0] is not None


def test_another_tenants_change_leaves_this_tenants_configuration_remembered(world, conversation):
    begin(conversation)
    with tenant_context(world.tenant_b):
        other = ConversationFactory(tenant=world.tenant_b)
        prompt_version_create(bot=other.bot, text="Bravo's prompt.", publish=True)
    assert runtime.turn_config(conversation.bot.tenant_id, conversation.bot.pk)[0] is not None
    assert begin(other).setup.prompt_text == "Bravo's prompt."


def test_a_turn_reading_during_an_uncommitted_publish_does_not_keep_the_old_prompt(transactional_db, world):
    """A turn on another thread reads the committed rows while a publish is in flight; once the
    publish commits, the next turn has the new prompt (the commit forgets what that turn read)."""
    with tenant_context(world.tenant_a):
        conversation = ConversationFactory(tenant=world.tenant_a, bot__prompt=FIRST_PROMPT)
    seen: list[str] = []

    def turn_elsewhere() -> None:
        try:
            seen.append(begin(conversation).setup.prompt_text)
        finally:
            from django.db import connection

            connection.close()

    try:
        with tenant_context(world.tenant_a), transaction.atomic():
            prompt_version_create(bot=conversation.bot, text="You answer in one sentence.", publish=True)
            reader = threading.Thread(target=turn_elsewhere)
            reader.start()
            reader.join()
        assert seen == [FIRST_PROMPT]  # the publish was not committed yet
        assert begin(conversation).setup.prompt_text == "You answer in one sentence."
    finally:
        runtime.reset()  # closes the pool threads' connections before the tables are flushed


@pytest.mark.integration
def test_a_prompt_published_by_another_process_is_used_within_the_ttl(transactional_db, world):
    """Another process's save fires its signals there, not here: this process sees the change
    once its remembered configuration is older than TURN_CONFIG_TTL."""
    with tenant_context(world.tenant_a):
        conversation = ConversationFactory(tenant=world.tenant_a, bot__prompt=FIRST_PROMPT)
    bot = conversation.bot
    try:
        assert begin(conversation).setup.prompt_text == FIRST_PROMPT
        publish = (
            "from bots.models import Bot\n"
            "from bots.services import prompt_version_create\n"
            "from tenants.context import tenant_context\n"
            f"bot = Bot.objects.unscoped().get(pk={bot.pk})\n"
            "with tenant_context(bot.tenant):\n"
            "    prompt_version_create(bot=bot, text='Published elsewhere.', publish=True)\n"
        )
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", publish],
            cwd=django_settings.BASE_DIR,
            env=child_env(),
            check=True,
            capture_output=True,
            timeout=120,
        )
        time.sleep(runtime.TURN_CONFIG_TTL)  # committed before this: older than the TTL after it
        assert begin(conversation).setup.prompt_text == "Published elsewhere."
    finally:
        runtime.reset()
