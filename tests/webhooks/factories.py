"""Webhook factories, registered for the cross-tenant URL walk."""

from __future__ import annotations

import factory

from bots import crypto
from tests.factories import SCOPED_FACTORIES, ScopedFactory, TenantFactory
from webhooks.models import Delivery, DeliveryAttempt, Endpoint

SECRET = "whsec_factory-secret-for-tests"


class EndpointFactory(ScopedFactory):
    class Meta:
        model = Endpoint

    tenant = factory.SubFactory(TenantFactory)
    url = "https://hooks.example.com/receive"
    events = factory.LazyFunction(lambda: ["lead.created"])
    secret_encrypted = factory.LazyFunction(lambda: crypto.encrypt(SECRET))
    secret_prefix = SECRET[:12]


class DeliveryFactory(ScopedFactory):
    class Meta:
        model = Delivery

    tenant = factory.SubFactory(TenantFactory)
    endpoint = factory.SubFactory(EndpointFactory, tenant=factory.SelfAttribute("..tenant"))
    event_id = factory.Sequence(lambda n: f"evt_{n:024x}")
    event_type = "lead.created"
    payload = factory.LazyAttribute(lambda o: {"id": o.event_id, "type": o.event_type, "data": {}})
    status = Delivery.Status.FAILED


class DeliveryAttemptFactory(ScopedFactory):
    class Meta:
        model = DeliveryAttempt

    tenant = factory.SubFactory(TenantFactory)
    delivery = factory.SubFactory(DeliveryFactory, tenant=factory.SelfAttribute("..tenant"))
    number = 1
    status_code = 500


SCOPED_FACTORIES.update({Endpoint: EndpointFactory, Delivery: DeliveryFactory, DeliveryAttempt: DeliveryAttemptFactory})
