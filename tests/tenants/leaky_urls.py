"""The real URLconf plus one view that forgets the tenant scope, to prove the walk catches it."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from chatbot_saas.urls import urlpatterns as real_urlpatterns
from tenants.models import Invitation


def leaky_invitation_detail(request: HttpRequest, tenant_slug: str, invitation_id: int) -> JsonResponse:
    invitation = Invitation.objects.unscoped().get(pk=invitation_id)  # the bug under test
    return JsonResponse({"email": invitation.email})


urlpatterns = [
    path("t/<slug:tenant_slug>/leaky/<int:invitation_id>/", leaky_invitation_detail, name="leaky"),
    *real_urlpatterns,
]
