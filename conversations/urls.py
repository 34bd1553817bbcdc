from django.urls import path

from . import openai_compat, views
from .api import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("v1/chat/completions", openai_compat.chat_completions, name="openai_chat_completions"),
    path("v1/models", openai_compat.models_list, name="openai_models"),
    path("widget/<str:bot_public_id>/session", views.widget_session, name="widget_session"),
    path("metrics", views.metrics_view, name="metrics"),
    path("t/<slug:tenant_slug>/conversations/", views.conversation_list, name="conversation_list"),
    path(
        "t/<slug:tenant_slug>/conversations/<int:conversation_id>/",
        views.conversation_detail,
        name="conversation_detail",
    ),
]
