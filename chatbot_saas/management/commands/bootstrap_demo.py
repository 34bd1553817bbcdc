"""Create (once) the demo tenant and its owner; print the credentials on every run."""

from __future__ import annotations

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand
from django.db import transaction

from chatbot_saas.signup import workspace_signup
from tenants.models import Tenant

DEMO_EMAIL = "owner@demo.local"
# Run in this order: the demo's plan first (Pro, comped, so every feature shows), then the demo
# knowledge base, then the demo bot attached to it.
DEMO_CONTENT_COMMANDS = ["bootstrap_demo_billing", "bootstrap_demo_knowledge", "bootstrap_demo_bot"]


class Command(BaseCommand):
    help = "Create the demo tenant 'demo' with an owner account, once."

    @transaction.atomic
    def handle(self, *args: object, **opts: object) -> None:
        creds_file = settings.VAR_DIR / "demo_credentials.json"
        tenant = Tenant.objects.filter(slug=settings.DEMO_TENANT_SLUG).first()
        if tenant is None or not creds_file.exists():
            User = get_user_model()
            password = secrets.token_urlsafe(12)
            user = User.objects.filter(email=DEMO_EMAIL).first()
            if user is None:
                user = User.objects.create_user(username="demo-owner", email=DEMO_EMAIL, password=password)
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            if tenant is None:
                tenant = workspace_signup(name="Demo", owner=user, slug=settings.DEMO_TENANT_SLUG)
            self._verify_email(user)
            settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
            creds_file.write_text(json.dumps({"email": DEMO_EMAIL, "password": password}))
            creds_file.chmod(0o600)
        # Other apps add their demo content through their own commands, run here when present.
        available = get_commands()
        for name in DEMO_CONTENT_COMMANDS:
            if name in available:
                call_command(name)
        creds = json.loads(creds_file.read_text())
        self.stdout.write(
            f"Demo tenant '{tenant.slug}': log in at {settings.SITE_URL}/accounts/login/ "
            f"as {creds['email']} / {creds['password']}"
        )

    @staticmethod
    def _verify_email(user: object) -> None:
        from allauth.account.models import EmailAddress

        EmailAddress.objects.update_or_create(user=user, email=DEMO_EMAIL, defaults={"verified": True, "primary": True})
