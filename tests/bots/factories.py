from __future__ import annotations

import factory

from bots.models import Bot
from tests.factories import SCOPED_FACTORIES, ScopedFactory, TenantFactory


class BotFactory(ScopedFactory):
    class Meta:
        model = Bot

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Bot {n}")
    model_chain = factory.LazyFunction(lambda: [{"provider": "offline", "model": "extractive", "params": {}}])
    allowed_origins = factory.LazyFunction(lambda: ["http://127.0.0.1:8001"])


SCOPED_FACTORIES[Bot] = BotFactory
