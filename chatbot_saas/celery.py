"""The Celery app. Tasks live in each app's tasks.py and are discovered automatically."""

from __future__ import annotations

import os

from celery import Celery, signals

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
