"""The Celery app. Tasks live in each app's tasks.py and are discovered automatically."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

from . import tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_saas.settings")

app = Celery("chatbot_saas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def _say_what_to_start(**_kwargs: object) -> None:
    # Started by hand with nothing to connect to: say so once, rather than only retrying the broker.
    from .devrecord import warn_if_no_services

    warn_if_no_services()


# Tracing (chatbot_saas/tracing.py): each pool process sets itself up after the fork, so the
# exporter's thread is its own. The signal handlers do nothing while tracing is off.
@signals.worker_process_init.connect
def _set_up_tracing(**_kwargs: object) -> None:
    from .tracing import setup_from_settings

    setup_from_settings("worker")


@signals.before_task_publish.connect
def _trace_published(headers: dict[str, Any] | None = None, **_kwargs: object) -> None:
    tracing.task_published(headers)


@signals.task_prerun.connect
def _trace_started(task_id: str, task: Any, **_kwargs: object) -> None:
    tracing.task_started(task_id=task_id, task_name=task.name, request=task.request)


@signals.task_postrun.connect
def _trace_finished(task_id: str, state: str | None = None, **_kwargs: object) -> None:
    tracing.task_finished(task_id=task_id, state=state)
