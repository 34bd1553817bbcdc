from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import worker_process_init

        worker_process_init.connect(_preload_embedder, weak=False, dispatch_uid="knowledge_preload_embedder")


def _preload_embedder(**kwargs: object) -> None:
    # Each prefork child loads the model once, before its first task, instead of per task.
    from django.conf import settings

    if settings.KNOWLEDGE_PRELOAD_EMBEDDER:
        from .embeddings import preload_default_embedder

        preload_default_embedder()
