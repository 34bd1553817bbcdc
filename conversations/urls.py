from django.urls import path

from . import explorer_views, gap_views, inbox_views, privacy_views, views

# The REST API (api/v1/) and the OpenAI-compatible routes (v1/) are mounted in chatbot_saas/api.py.

urlpatterns = [
    path("widget/<str:bot_public_id>/session", views.widget_session, name="widget_session"),
    path("metrics", views.metrics_view, name="metrics"),
    path("t/<slug:tenant_slug>/conversations/", explorer_views.conversation_list, name="conversation_list"),
    # One route per format (not a <fmt> kwarg), so the cross-tenant walk tries both.
    path(
        "t/<slug:tenant_slug>/conversations/export.csv",
        explorer_views.conversation_export,
        {"fmt": "csv"},
        name="conversation_export_csv",
    ),
    path(
        "t/<slug:tenant_slug>/conversations/export.jsonl",
        explorer_views.conversation_export,
        {"fmt": "jsonl"},
        name="conversation_export_jsonl",
    ),
    # The bot editor's Test connection button (here, not in bots: it calls conversations.llm).
    path("t/<slug:tenant_slug>/bots/<int:bot_id>/models/test/", views.bot_test_connection, name="bot_test_connection"),
    path(
        "t/<slug:tenant_slug>/conversations/<int:conversation_id>/",
        views.conversation_detail,
        name="conversation_detail",
    ),
    path(
        "t/<slug:tenant_slug>/conversations/<int:conversation_id>/messages/<int:message_id>/trace/",
        views.message_trace,
        name="message_trace",
    ),
    path(
        "t/<slug:tenant_slug>/conversations/<int:conversation_id>/messages/<int:message_id>/correct/",
        gap_views.message_correct,
        name="message_correct",
    ),
    path("t/<slug:tenant_slug>/playground/", views.playground, name="playground"),
    path("t/<slug:tenant_slug>/knowledge-gaps/", gap_views.knowledge_gaps, name="knowledge_gaps"),
    path("t/<slug:tenant_slug>/knowledge-gaps/<int:gapgroup_id>/dismiss/", gap_views.gap_dismiss, name="gap_dismiss"),
    path("t/<slug:tenant_slug>/knowledge-gaps/<int:gapgroup_id>/correct/", gap_views.gap_correct, name="gap_correct"),
    # Human handoff (agents only, 404 for anyone else).
    path("t/<slug:tenant_slug>/inbox/", inbox_views.inbox, name="inbox"),
    path("t/<slug:tenant_slug>/inbox/duty/", inbox_views.inbox_duty, name="inbox_duty"),
    path("t/<slug:tenant_slug>/inbox/<int:conversation_id>/", inbox_views.inbox_detail, name="inbox_detail"),
    path("t/<slug:tenant_slug>/inbox/<int:conversation_id>/take/", inbox_views.inbox_take, name="inbox_take"),
    path("t/<slug:tenant_slug>/inbox/<int:conversation_id>/reply/", inbox_views.inbox_reply, name="inbox_reply"),
    path("t/<slug:tenant_slug>/inbox/<int:conversation_id>/release/", inbox_views.inbox_release, name="inbox_release"),
    path("t/<slug:tenant_slug>/inbox/<int:conversation_id>/close/", inbox_views.inbox_close, name="inbox_close"),
    path(
        "t/<slug:tenant_slug>/inbox/<int:conversation_id>/transfer/", inbox_views.inbox_transfer, name="inbox_transfer"
    ),
    path("t/<slug:tenant_slug>/leads/", inbox_views.leads, name="leads"),
    path("t/<slug:tenant_slug>/leads.csv", inbox_views.leads_csv, name="leads_csv"),
    # Settings → Privacy (owners and admins): one visitor's export and erasure.
    path("t/<slug:tenant_slug>/settings/privacy/", privacy_views.privacy_page, name="privacy"),
    path(
        "t/<slug:tenant_slug>/settings/privacy/export/",
        privacy_views.privacy_visitor_export,
        name="privacy_visitor_export",
    ),
    path(
        "t/<slug:tenant_slug>/settings/privacy/erase/",
        privacy_views.privacy_visitor_erase,
        name="privacy_visitor_erase",
    ),
]
