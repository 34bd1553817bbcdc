from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

from .health import healthz
from .home import tenant_home
from .tenant_data_views import workspace_delete, workspace_export

urlpatterns = [
    path("", TemplateView.as_view(template_name="landing.html"), name="landing"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    # The workspace home: here, not in tenants.urls, because its checklist reads every app.
    path("t/<slug:tenant_slug>/", tenant_home, name="tenant_home"),
    # Whole-workspace export and deletion (owners): here because they read and delete every app.
    path("t/<slug:tenant_slug>/settings/export.zip", workspace_export, name="workspace_export"),
    path("t/<slug:tenant_slug>/settings/delete/", workspace_delete, name="workspace_delete"),
    path("", include("tenants.urls")),
    path("", include("knowledge.urls")),
    path("", include("bots.urls")),
    path("", include("conversations.urls")),
    path("", include("chatbot_saas.api")),
    path("", include("billing.urls")),
    path("", include("webhooks.urls")),
]
