from django.urls import path

from . import views

urlpatterns = [
    path("t/<slug:tenant_slug>/billing/", views.billing_page, name="billing_page"),
    path("t/<slug:tenant_slug>/billing/checkout/", views.checkout_start, name="billing_checkout"),
    path("t/<slug:tenant_slug>/billing/checkout/success/", views.checkout_success, name="billing_checkout_success"),
    path("t/<slug:tenant_slug>/billing/portal/", views.portal_open, name="billing_portal"),
    path("billing/stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
]
