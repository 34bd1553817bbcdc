from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import worker_process_init

        from billing.usage_sources import register_usage_source

        from .selectors import document_bytes_for_tenant, document_count_for_tenant

        # billing's quotas count documents and storage through these, not through our models.
        register_usage_source("documents", document_count_for_tenant)
        register_usage_source("storage_bytes", document_bytes_for_tenant)

        worker_process_init.connect(_preload_embedder, weak=False, dispatch_uid="knowledge_preload_embedder")


def _preload_embedder(**kwargs: object) -> None:
    # Each prefork child loads the model once, before its first task, instead of per task.
    from django.conf import settings

    if settings.KNOWLEDGE_PRELOAD_EMBEDDER:
        from .embeddings import preload_default_embedder

        preload_default_embedder()
