"""Signup: a new workspace (tenant), its owner, and its free plan, written in one transaction.

This crosses two apps, tenants and billing, so it lives above both: tenants imports no app
(STYLE.md, "Boundaries between apps"), and billing must not create tenants.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest

from billing.services import subscription_start_free
from tenants.models import Tenant
from tenants.services import tenant_create_with_owner


@transaction.atomic
def workspace_signup(*, name: str, owner: AbstractBaseUser, slug: str | None = None) -> Tenant:
    """Create a tenant owned by `owner` on the default (free) plan. Used by signup and the demo bootstrap.

    All or nothing: a failure in either app leaves no tenant without a plan behind.
    """
    tenant = tenant_create_with_owner(name=name, owner=owner, slug=slug)
    subscription_start_free(tenant=tenant)
    return tenant


class SignupForm(forms.Form):
    """Extra signup field for allauth (ACCOUNT_SIGNUP_FORM_CLASS): every signup creates its own workspace."""

    organisation = forms.CharField(
        max_length=120,
        label="Company or workspace name",
        widget=forms.TextInput(attrs={"placeholder": "Acme Inc.", "autocomplete": "organization"}),
    )

    def clean_organisation(self) -> str:
        value = self.cleaned_data["organisation"].strip()
        if not value:
            raise forms.ValidationError("Give your workspace a name.")
        return value

    def signup(self, request: HttpRequest, user: AbstractBaseUser) -> None:
        tenant = workspace_signup(name=self.cleaned_data["organisation"], owner=user)
        request.session["tenant_slug"] = tenant.slug
