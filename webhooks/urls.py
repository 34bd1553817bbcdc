from django.urls import path

from . import views

_endpoint = "t/<slug:tenant_slug>/settings/webhooks/<int:endpoint_id>"

urlpatterns = [
    path("t/<slug:tenant_slug>/settings/webhooks/", views.webhook_list, name="webhook_list"),
    path(f"{_endpoint}/", views.webhook_detail, name="webhook_detail"),
    path(f"{_endpoint}/test/", views.webhook_test, name="webhook_test"),
    path(f"{_endpoint}/rotate/", views.webhook_rotate, name="webhook_rotate"),
    path(f"{_endpoint}/enable/", views.webhook_enable, name="webhook_enable"),
    path(f"{_endpoint}/disable/", views.webhook_disable, name="webhook_disable"),
    path(f"{_endpoint}/delete/", views.webhook_delete, name="webhook_delete"),
    path(
        "t/<slug:tenant_slug>/settings/webhooks/deliveries/<int:delivery_id>/redeliver/",
        views.delivery_redeliver,
        name="webhook_redeliver",
    ),
]
