"""factory_boy factories. Tenant-owned models are created through `.unscoped()`, because
factories run outside any request and state their tenant explicitly."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.models import Subscription, UsageCounter
from billing.services import current_period, plan_default
from tenants.models import ApiKey, Invitation, Membership, Role, Tenant


class ScopedFactory(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True

    @classmethod
    def _get_manager(cls, model_class):
        manager = model_class._default_manager
        return manager.unscoped() if hasattr(manager, "unscoped") else manager


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")

    @factory.post_generation
    def subscription(obj, create, extracted, **kwargs):
        if create:
            from billing.services import subscription_start_free

            subscription_start_free(tenant=obj)


class MembershipFactory(ScopedFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


class InvitationFactory(ScopedFactory):
    class Meta:
        model = Invitation

    tenant = factory.SubFactory(TenantFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@example.com")
    role = Role.MEMBER
    token_hash = factory.Sequence(lambda n: f"{n:064d}")
    expires = factory.LazyFunction(lambda: timezone.now() + timedelta(days=1))


class ApiKeyFactory(ScopedFactory):
    class Meta:
        model = ApiKey

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"key {n}")
    prefix = factory.Sequence(lambda n: f"{n:08x}")
    key_hash = factory.Sequence(lambda n: f"{n:064x}")
    scopes = factory.LazyFunction(lambda: ["chat", "bots:read"])


class SubscriptionFactory(ScopedFactory):
    class Meta:
        model = Subscription
        django_get_or_create = ("tenant",)

    tenant = factory.SubFactory(TenantFactory)
    plan = factory.LazyFunction(plan_default)


class UsageCounterFactory(ScopedFactory):
    class Meta:
        model = UsageCounter
        django_get_or_create = ("tenant", "period")

    tenant = factory.SubFactory(TenantFactory)
    period = factory.LazyFunction(current_period)


# Every tenant-owned model needs a factory here: the cross-tenant URL walk builds one object
# of each in tenant A and tries its id as tenant B. Apps register theirs in this mapping.
SCOPED_FACTORIES: dict[type, type[factory.Factory]] = {
    Membership: MembershipFactory,
    Invitation: InvitationFactory,
    ApiKey: ApiKeyFactory,
    Subscription: SubscriptionFactory,
    UsageCounter: UsageCounterFactory,
}


def _discover_app_factories() -> None:
    """Each app's tests/<app>/factories.py registers its models in SCOPED_FACTORIES on import."""
    import importlib

    for app in ("bots", "knowledge", "conversations", "billing", "webhooks"):
        try:
            importlib.import_module(f"tests.{app}.factories")
        except ModuleNotFoundError as exc:
            if exc.name != f"tests.{app}.factories" and exc.name != f"tests.{app}":
                raise


_discover_app_factories()
