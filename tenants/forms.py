from __future__ import annotations

from django import forms

from .models import ApiKey, Role


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


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class WorkspaceForm(forms.Form):
    name = forms.CharField(
        max_length=120, label="Workspace name", help_text="Shown in the sidebar, in emails and to invitees."
    )
    conversation_retention_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=3650,
        label="Keep conversations for (days)",
        help_text="Conversations inactive for longer are deleted once a day, with their messages, traces and "
        "feedback. Leave empty to keep them forever.",
    )
