"""The Celery app. Tasks live in each app's tasks.py and are discovered automatically."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_saas.settings")

app = Celery("chatbot_saas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
