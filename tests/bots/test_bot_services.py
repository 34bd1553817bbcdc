"""Bot creation, validation, prompt versions, publishing and rollback."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from billing.models import Plan, Subscription
from billing.quotas import QuotaExceeded
from bots import selectors, services
from bots.models import Bot, PromptPublication, PromptVersion
from tenants.context import tenant_context
from tests.bots.factories import BotFactory


def test_a_new_bot_has_its_first_prompt_published_and_the_publication_recorded(world, in_tenant_a):
    bot = services.bot_create(tenant=world.tenant_a, name="Support", system_prompt="Be kind.", author=world.alice)
    published = selectors.prompt_published(bot=bot)
    assert published.number == 1 and published.text == "Be kind." and published.author == world.alice
    publication = PromptPublication.objects.get(bot=bot)
    assert publication.version == published and publication.by == world.alice and publication.previous is None
    assert bot.model_chain[-1]["provider"] == "offline"


def test_bot_creation_checks_the_plans_bot_quota(world, in_tenant_a):
    plan = Plan.objects.create(slug="one-bot", name="One bot", max_bots=1)
    Subscription.objects.filter(tenant=world.tenant_a).update(plan=plan)
    services.bot_create(tenant=world.tenant_a, name="First", system_prompt="Hi")
    with pytest.raises(QuotaExceeded) as exc:
        services.bot_create(tenant=world.tenant_a, name="Second", system_prompt="Hi")
    assert exc.value.code == "quota_exceeded"
    assert Bot.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"system_prompt": "   "}, "system_prompt"),
        ({"model_chain": []}, "model_chain"),
        ({"model_chain": [{"provider": "skynet", "model": "x"}]}, "model_chain"),
        ({"model_chain": [{"provider": "openai", "model": "gpt 4o; rm -rf"}]}, "model_chain"),
        ({"model_chain": [{"provider": "openai", "model": "gpt-4o", "params": {"temperature": 9}}]}, "model_chain"),
        ({"model_chain": [{"provider": "openai", "model": "gpt-4o", "params": {"temperature": True}}]}, "model_chain"),
        ({"model_chain": [{"provider": "openai", "model": "gpt-4o", "params": {"api_key": "x"}}]}, "model_chain"),
        ({"model_chain": [{"provider": "openai", "model": "m", "params": {"base_url": "http://x"}}]}, "model_chain"),
        ({"model_chain": "openai"}, "model_chain"),
        ({"allowed_origins": ["javascript:alert(1)"]}, "allowed_origins"),
        ({"blocked_topics": ["re:(unclosed"]}, "blocked_topics"),
        ({"max_answer_tokens": 10**9}, "max_answer_tokens"),
        ({"widget": {"onload": "alert(1)"}}, "widget"),
        ({"identity_secret": "mine"}, "identity_secret"),
    ],
)
def test_bad_settings_are_refused_at_save_time_with_field_errors(world, in_tenant_a, fields, field):
    kwargs = {"system_prompt": "Be kind.", **fields}
    with pytest.raises(ValidationError) as exc:
        services.bot_create(tenant=world.tenant_a, name="Bad", **kwargs)
    assert field in exc.value.message_dict
    assert not Bot.objects.filter(name="Bad").exists()


def test_bot_update_validates_and_saves_only_valid_changes(world, in_tenant_a):
    bot = services.bot_create(tenant=world.tenant_a, name="Support", system_prompt="Be kind.")
    with pytest.raises(ValidationError):
        services.bot_update(bot=bot, model_chain=[{"provider": "openai", "model": ""}])
    bot.refresh_from_db()
    assert bot.model_chain[-1]["provider"] == "offline"
    services.bot_update(bot=bot, model_chain=[{"provider": "anthropic", "model": "claude-haiku-4-5"}], temperature=0.5)
    bot.refresh_from_db()
    assert bot.model_chain == [{"provider": "anthropic", "model": "claude-haiku-4-5", "params": {}}]


def test_exactly_one_version_is_published_after_publishing_and_rolling_back(world, in_tenant_a):
    bot = services.bot_create(tenant=world.tenant_a, name="Support", system_prompt="Version one.")
    v2 = services.prompt_version_create(bot=bot, text="Version two.", note="friendlier", publish=True)
    v3 = services.prompt_version_create(bot=bot, text="Version three.")
    assert selectors.prompt_published(bot=bot) == v2 and not PromptVersion.objects.get(pk=v3.pk).is_published
    v1 = PromptVersion.objects.get(bot=bot, number=1)
    services.bot_rollback_prompt(bot=bot, version=v1, by=world.alice)
    assert PromptVersion.objects.filter(bot=bot, is_published=True).get() == v1
    last = PromptPublication.objects.filter(bot=bot).first()
    assert last.action == "rollback" and last.version == v1 and last.previous == v2


def test_a_version_of_another_bot_cannot_be_published(world, in_tenant_a):
    bot = services.bot_create(tenant=world.tenant_a, name="One", system_prompt="One.")
    other = BotFactory(tenant=world.tenant_a)
    with pytest.raises(ValidationError):
        services.bot_publish_prompt(bot=bot, version=selectors.prompt_published(bot=other))


def test_the_diff_between_two_versions_shows_added_and_removed_lines(world, in_tenant_a):
    bot = services.bot_create(tenant=world.tenant_a, name="Support", system_prompt="Line A\nLine B")
    v2 = services.prompt_version_create(bot=bot, text="Line A\nLine C")
    diff = selectors.prompt_diff(old=PromptVersion.objects.get(bot=bot, number=1), new=v2)
    assert ("-", "Line B") in diff and ("+", "Line C") in diff and (" ", "Line A") in diff


def test_attaching_another_tenants_knowledge_base_is_refused(world):
    from tests.knowledge.factories import KnowledgeBaseFactory

    foreign = KnowledgeBaseFactory(tenant=world.tenant_b)
    with tenant_context(world.tenant_a):
        bot = services.bot_create(tenant=world.tenant_a, name="Support", system_prompt="Hi")
        with pytest.raises(ValidationError):
            services.bot_attach_knowledge_bases(bot=bot, knowledge_base_ids=[foreign.pk])
        assert bot.knowledge_bases.count() == 0
