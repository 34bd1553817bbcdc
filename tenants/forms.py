from __future__ import annotations

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest

from .models import ApiKey, Role


class SignupForm(forms.Form):
    """Extra signup field for allauth: every signup creates its own workspace."""

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
        from .services import tenant_create_with_owner

        tenant = tenant_create_with_owner(name=self.cleaned_data["organisation"], owner=user)
        request.session["tenant_slug"] = tenant.slug


class InvitationForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=[(Role.MEMBER, "Member"), (Role.ADMIN, "Admin")])


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Scope.CHAT, ApiKey.Scope.BOTS_READ],
    )
