from django.urls import path

from . import views

urlpatterns = [
    path("dashboard/", views.dashboard_redirect, name="dashboard"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("t/<slug:tenant_slug>/members/", views.member_list, name="member_list"),
    path("t/<slug:tenant_slug>/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("t/<slug:tenant_slug>/members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("t/<slug:tenant_slug>/members/<int:membership_id>/agent/", views.member_agent, name="member_agent"),
    path("t/<slug:tenant_slug>/settings/", views.workspace_settings, name="workspace_settings"),
    path("t/<slug:tenant_slug>/settings/leave/", views.workspace_leave, name="workspace_leave"),
    path(
        "t/<slug:tenant_slug>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("t/<slug:tenant_slug>/api-keys/", views.api_key_list, name="api_key_list"),
    path("t/<slug:tenant_slug>/api-keys/<int:apikey_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
]
