from __future__ import annotations

import factory

from knowledge.models import KnowledgeBase
from tests.factories import SCOPED_FACTORIES, ScopedFactory, TenantFactory


class KnowledgeBaseFactory(ScopedFactory):
    class Meta:
        model = KnowledgeBase

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"KB {n}")


SCOPED_FACTORIES[KnowledgeBase] = KnowledgeBaseFactory
