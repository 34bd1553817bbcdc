from __future__ import annotations

import factory

from knowledge.models import Chunk, Document, KnowledgeBase
from tests.factories import SCOPED_FACTORIES, ScopedFactory, TenantFactory


class KnowledgeBaseFactory(ScopedFactory):
    class Meta:
        model = KnowledgeBase

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"KB {n}")


class DocumentFactory(ScopedFactory):
    class Meta:
        model = Document

    tenant = factory.SubFactory(TenantFactory)
    knowledge_base = factory.SubFactory(KnowledgeBaseFactory, tenant=factory.SelfAttribute("..tenant"))
    source = Document.Source.TEXT
    title = factory.Sequence(lambda n: f"Document {n}")
    status = Document.Status.READY
    version = 1
    active_version = 1


class ChunkFactory(ScopedFactory):
    class Meta:
        model = Chunk

    tenant = factory.SubFactory(TenantFactory)
    document = factory.SubFactory(DocumentFactory, tenant=factory.SelfAttribute("..tenant"))
    knowledge_base = factory.SelfAttribute("document.knowledge_base")
    document_version = factory.SelfAttribute("document.active_version")
    position = factory.Sequence(lambda n: n)
    text = "A chunk of text."
    token_count = 5
    embedding_model = "all-MiniLM-L6-v2"
    embedding_dim = 384
    embedding = factory.LazyFunction(lambda: [1.0] + [0.0] * 383)


SCOPED_FACTORIES[KnowledgeBase] = KnowledgeBaseFactory
SCOPED_FACTORIES[Document] = DocumentFactory
SCOPED_FACTORIES[Chunk] = ChunkFactory
