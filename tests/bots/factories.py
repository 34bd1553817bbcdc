from __future__ import annotations

import factory

from bots.crypto import encrypt
from bots.models import (
    Bot,
    Correction,
    CorrectionVersion,
    EvalCase,
    EvalResult,
    EvalRun,
    HandoffSettings,
    PromptPublication,
    PromptVersion,
    ProviderCredential,
    WidgetOrigin,
)
from tests.factories import SCOPED_FACTORIES, ScopedFactory, TenantFactory


class BotFactory(ScopedFactory):
    """A bot as bot_create leaves it: version 1 of its prompt published (pass prompt=None for none)."""

    class Meta:
        model = Bot

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Bot {n}")
    model_chain = factory.LazyFunction(lambda: [{"provider": "offline", "model": "extractive", "params": {}}])
    allowed_origins = factory.LazyFunction(lambda: ["http://127.0.0.1:8001"])

    @factory.post_generation
    def prompt(obj, create, extracted, **kwargs):
        if create and extracted is not False:
            PromptVersion.objects.unscoped().create(
                tenant=obj.tenant,
                bot=obj,
                number=1,
                text=extracted or "You are the helpful assistant of this company. Answer briefly.",
                is_published=True,
            )


class PromptVersionFactory(ScopedFactory):
    class Meta:
        model = PromptVersion

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))
    number = factory.Sequence(lambda n: n + 100)
    text = "You answer questions about our product."


class PromptPublicationFactory(ScopedFactory):
    class Meta:
        model = PromptPublication

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))
    version = factory.SubFactory(
        PromptVersionFactory, tenant=factory.SelfAttribute("..tenant"), bot=factory.SelfAttribute("..bot")
    )


class ProviderCredentialFactory(ScopedFactory):
    class Meta:
        model = ProviderCredential
        django_get_or_create = ("tenant", "provider")

    tenant = factory.SubFactory(TenantFactory)
    provider = "openai"
    encrypted_key = factory.LazyFunction(lambda: encrypt("sk-test-key-0000"))
    key_hint = "0000"


class EvalCaseFactory(ScopedFactory):
    class Meta:
        model = EvalCase

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))
    question = factory.Sequence(lambda n: f"How does feature {n} work?")


class EvalRunFactory(ScopedFactory):
    class Meta:
        model = EvalRun

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))


class EvalResultFactory(ScopedFactory):
    class Meta:
        model = EvalResult

    tenant = factory.SubFactory(TenantFactory)
    run = factory.SubFactory(EvalRunFactory, tenant=factory.SelfAttribute("..tenant"))
    question = "How does it work?"


SCOPED_FACTORIES.update(
    {
        EvalCase: EvalCaseFactory,
        EvalRun: EvalRunFactory,
        EvalResult: EvalResultFactory,
        Bot: BotFactory,
        PromptVersion: PromptVersionFactory,
        PromptPublication: PromptPublicationFactory,
        ProviderCredential: ProviderCredentialFactory,
    }
)


class WidgetOriginFactory(ScopedFactory):
    class Meta:
        model = WidgetOrigin

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))
    origin = factory.Sequence(lambda n: f"https://site{n}.example.com")
    allowed = True


SCOPED_FACTORIES[WidgetOrigin] = WidgetOriginFactory


class CorrectionFactory(ScopedFactory):
    """A correction with a placeholder vector (tests that match questions use correction_create)."""

    class Meta:
        model = Correction

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))
    question = factory.Sequence(lambda n: f"Question {n}?")
    answer = "The support team's answer."
    embedding = factory.LazyFunction(lambda: [1.0] + [0.0] * 383)
    embedding_model = "all-MiniLM-L6-v2"


class CorrectionVersionFactory(ScopedFactory):
    class Meta:
        model = CorrectionVersion

    tenant = factory.SubFactory(TenantFactory)
    correction = factory.SubFactory(CorrectionFactory, tenant=factory.SelfAttribute("..tenant"))
    number = factory.Sequence(lambda n: n + 1)
    question = "Question?"
    answer = "Answer."


SCOPED_FACTORIES.update({Correction: CorrectionFactory, CorrectionVersion: CorrectionVersionFactory})


class HandoffSettingsFactory(ScopedFactory):
    class Meta:
        model = HandoffSettings

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))
    enabled = True


SCOPED_FACTORIES[HandoffSettings] = HandoffSettingsFactory
