"""Dashboard pages for outbound webhooks (admins and owners): endpoints, secrets, the delivery
log, test events and redelivery. Objects are fetched through the tenant scope (404 for another
workspace's ids) before the plan is looked at."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from billing.quotas import feature_enabled, plan_cheapest_with
from chatbot_saas.errors import AppError
from tenants.decorators import require_role
from tenants.http import TenantRequest
from tenants.models import Role

from . import selectors, services
from .catalog import EVENTS
from .forms import EndpointForm
from .models import Delivery, Endpoint


def _upgrade_context(request: TenantRequest) -> dict:
    plan = plan_cheapest_with(feature="webhooks")
    return {"upgrade_plan": plan.name if plan else ""}


@require_http_methods(["GET", "POST"])
@require_role(Role.ADMIN)
def webhook_list(request: TenantRequest, tenant_slug: str) -> HttpResponse:
    """The endpoints and the form that adds one; a new endpoint's secret is shown here, once."""
    allowed = feature_enabled(tenant=request.tenant, feature="webhooks")
    form = EndpointForm(request.POST if request.method == "POST" else None)
    created = secret = None
    status = 200
    if request.method == "POST" and not allowed:
        form = EndpointForm()
        messages.error(request, "Webhooks are not included in your plan. Upgrade on the Billing page to use them.")
        status = 402
    elif request.method == "POST" and form.is_valid():
        try:
            created, secret = services.endpoint_create(
                tenant=request.tenant,
                url=form.cleaned_data["url"],
                description=form.cleaned_data["description"],
                events=form.cleaned_data["events"],
                created_by=request.user,
            )
        except AppError as exc:
            form.add_error(None, exc.message)
            status = exc.status
        else:
            form = EndpointForm()
    elif form.errors:
        status = 400
    context = {
        "endpoints": selectors.endpoint_list(),
        "form": form,
        "allowed": allowed,
        "created": created,
        "secret": secret,
        "events": EVENTS,
        **_upgrade_context(request),
    }
    return render(request, "webhooks/list.html", context, status=status)


@require_http_methods(["GET", "POST"])
@require_role(Role.ADMIN)
def webhook_detail(request: TenantRequest, tenant_slug: str, endpoint_id: int) -> HttpResponse:
    """One endpoint: its settings (editable), its secret's prefix, actions and the delivery log.
    htmx asks for the log alone (?log=1) while deliveries are pending."""
    endpoint = get_object_or_404(Endpoint.objects, pk=endpoint_id)
    if request.htmx and request.GET.get("log"):
        return render(request, "webhooks/_log.html", _log_context(endpoint))
    initial = {"url": endpoint.url, "description": endpoint.description, "events": endpoint.events}
    form = EndpointForm(request.POST if request.method == "POST" else None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.endpoint_update(
                    endpoint=endpoint,
                    url=form.cleaned_data["url"],
                    description=form.cleaned_data["description"],
                    events=form.cleaned_data["events"],
                )
            except AppError as exc:
                form.add_error(None, exc.message)
                status = exc.status
            else:
                messages.success(request, "The endpoint was saved.")
                return redirect("webhook_detail", tenant_slug=tenant_slug, endpoint_id=endpoint.pk)
        else:
            status = 400
    return _detail(request, endpoint, form=form, status=status)


def _log_context(endpoint: Endpoint) -> dict:
    return {
        "endpoint": endpoint,
        "attempts": selectors.attempt_log(endpoint=endpoint),
        "pending": selectors.pending_count(endpoint=endpoint),
    }


def _detail(
    request: TenantRequest, endpoint: Endpoint, *, form: EndpointForm | None = None, secret: str = "", status: int = 200
) -> HttpResponse:
    if form is None:
        form = EndpointForm(
            initial={"url": endpoint.url, "description": endpoint.description, "events": endpoint.events}
        )
    context = {
        "form": form,
        "secret": secret,
        "allowed": feature_enabled(tenant=request.tenant, feature="webhooks"),
        **_log_context(endpoint),
        **_upgrade_context(request),
    }
    return render(request, "webhooks/detail.html", context, status=status)


@require_POST
@require_role(Role.ADMIN)
def webhook_rotate(request: TenantRequest, tenant_slug: str, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint.objects, pk=endpoint_id)
    try:
        secret = services.endpoint_rotate_secret(endpoint=endpoint)
    except AppError as exc:
        messages.error(request, exc.message)
        return redirect("webhook_detail", tenant_slug=tenant_slug, endpoint_id=endpoint.pk)
    return _detail(request, endpoint, secret=secret)


def _action(request: TenantRequest, tenant_slug: str, endpoint: Endpoint, action, done: str) -> HttpResponse:
    try:
        action(endpoint=endpoint)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("webhook_detail", tenant_slug=tenant_slug, endpoint_id=endpoint.pk)


@require_POST
@require_role(Role.ADMIN)
def webhook_test(request: TenantRequest, tenant_slug: str, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint.objects, pk=endpoint_id)
    return _action(
        request,
        tenant_slug,
        endpoint,
        services.endpoint_send_test,
        "A test event is on its way; it appears in the log.",
    )


@require_POST
@require_role(Role.ADMIN)
def webhook_enable(request: TenantRequest, tenant_slug: str, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint.objects, pk=endpoint_id)
    return _action(request, tenant_slug, endpoint, services.endpoint_enable, "The endpoint is enabled again.")


@require_POST
@require_role(Role.ADMIN)
def webhook_disable(request: TenantRequest, tenant_slug: str, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint.objects, pk=endpoint_id)
    return _action(request, tenant_slug, endpoint, services.endpoint_disable, "The endpoint is disabled.")


@require_POST
@require_role(Role.ADMIN)
def webhook_delete(request: TenantRequest, tenant_slug: str, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint.objects, pk=endpoint_id)
    services.endpoint_delete(endpoint=endpoint)
    messages.success(request, f"The endpoint {endpoint.url} was deleted.")
    return redirect("webhook_list", tenant_slug=tenant_slug)


@require_POST
@require_role(Role.ADMIN)
def delivery_redeliver(request: TenantRequest, tenant_slug: str, delivery_id: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery.objects.select_related("endpoint"), pk=delivery_id)
    try:
        services.delivery_redeliver(delivery=delivery)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"The {delivery.event_type} event is being sent again.")
    return redirect("webhook_detail", tenant_slug=tenant_slug, endpoint_id=delivery.endpoint_id)
