"""A small fake of the Stripe API for tests, reached by the official `stripe` SDK.

It speaks Stripe's wire format (form-encoded requests with bracketed keys, JSON answers,
`{"error": {...}}` failures, Bearer authentication) for the endpoints we call: customers,
checkout sessions, billing portal sessions, subscriptions retrieve/list, invoices list and
billing meter events. Tests drive its state (complete a checkout, switch a plan, fail a payment,
cancel) through Python methods; each change emits the events real Stripe would, signed with
the real scheme (`Stripe-Signature: t=<unix>,v1=<HMAC-SHA256 of "t.payload">`). Events are kept
in `events` and can be POSTed to a webhook URL in any order.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MONTH = 30 * 24 * 3600


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header for `payload`, computed the way Stripe does."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding (`a[b][0][c]=v`) back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for part, nxt in itertools.pairwise(parts):
            node = _child(node, part, [] if nxt.isdigit() else {})
        _put(node, parts[-1], value)
    return root


def _child(node: Any, key: str, default: Any) -> Any:
    if isinstance(node, list):
        index = int(key)
        node.extend([None] * (index + 1 - len(node)))
        if node[index] is None:
            node[index] = default
        return node[index]
    return node.setdefault(key, default)


def _put(node: Any, key: str, value: str) -> None:
    if isinstance(node, list):
        index = int(key)
        node.extend([None] * (index + 1 - len(node)))
        node[index] = value
    else:
        node[key] = value


class StripeFailure(Exception):
    def __init__(self, status: int, message: str, code: str = "resource_missing") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass
class SentEvent:
    id: str
    type: str
    payload: str

    def signed_headers(self, secret: str, timestamp: int | None = None) -> dict[str, str]:
        return {"Stripe-Signature": sign(self.payload, secret, timestamp), "Content-Type": "application/json"}


@dataclass
class FakeStripe:
    api_key: str
    webhook_secret: str
    base_url: str = ""
    customers: dict[str, dict] = field(default_factory=dict)
    sessions: dict[str, dict] = field(default_factory=dict)
    portal_sessions: dict[str, dict] = field(default_factory=dict)
    subscriptions: dict[str, dict] = field(default_factory=dict)
    invoices: dict[str, dict] = field(default_factory=dict)
    meter_events: dict[str, dict] = field(default_factory=dict)
    price_amounts: dict[str, int] = field(default_factory=dict)
    events: list[SentEvent] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _clock: itertools.count = field(default_factory=lambda: itertools.count(1_800_000_000))

    # --- helpers ------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    def _now(self) -> int:
        # A strictly increasing clock, so "newest" is well defined however fast tests run.
        return next(self._clock)

    def _emit(self, type_: str, obj: dict) -> SentEvent:
        event_id = self._id("evt")
        payload = json.dumps(
            {
                "id": event_id,
                "object": "event",
                "api_version": "2026-10-28.endive",
                "created": self._now(),
                "livemode": False,
                "type": type_,
                "data": {"object": json.loads(json.dumps(obj))},
            }
        )
        sent = SentEvent(event_id, type_, payload)
        self.events.append(sent)
        return sent

    def events_for(self, customer_id: str) -> list[SentEvent]:
        return [e for e in self.events if json.loads(e.payload)["data"]["object"].get("customer") == customer_id]

    def count_requests(self, method: str, path_prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(path_prefix))

    # --- state a test drives ------------------------------------------------------------
    def complete_checkout(self, session_id: str) -> dict:
        """The customer paid: create the subscription and its first invoice, emit the events."""
        with self.lock:
            session = self.sessions[session_id]
            price = session["line_items"][0]["price"]
            trial_days = int((session.get("subscription_data") or {}).get("trial_period_days") or 0)
            sub = self.create_subscription(session["customer"], price, trial_days=trial_days, emit=False)
            session.update(status="complete", payment_status="paid", subscription=sub["id"])
            self._emit("checkout.session.completed", session)
            self._emit("customer.subscription.created", sub)
            self._pay_invoice(sub)
            return sub

    def create_subscription(self, customer_id: str, price: str, *, trial_days: int = 0, emit: bool = True) -> dict:
        with self.lock:
            now = self._now()
            sub = {
                "id": self._id("sub"),
                "object": "subscription",
                "customer": customer_id,
                "status": "trialing" if trial_days else "active",
                "created": now,
                "cancel_at_period_end": False,
                "trial_end": now + trial_days * 86400 if trial_days else None,
                "items": {
                    "object": "list",
                    "data": [
                        {
                            "id": self._id("si"),
                            "object": "subscription_item",
                            "price": {"id": price, "object": "price"},
                            "quantity": 1,
                            "current_period_start": now,
                            "current_period_end": now + MONTH,
                        }
                    ],
                },
            }
            self.subscriptions[sub["id"]] = sub
            if emit:
                self._emit("customer.subscription.created", sub)
                self._pay_invoice(sub)
            return sub

    def _invoice(self, sub: dict, status: str) -> dict:
        invoice_id = self._id("in")
        return {
            "id": invoice_id,
            "object": "invoice",
            "number": f"FAKE-{len(self.invoices) + 1:04d}",
            "customer": sub["customer"],
            "subscription": sub["id"],
            "status": status,
            "total": self.price_amounts.get(sub["items"]["data"][0]["price"]["id"], 1000),
            "currency": "usd",
            "hosted_invoice_url": f"{self.base_url}/invoice/{invoice_id}",
            "created": self._now(),
        }

    def _pay_invoice(self, sub: dict) -> dict:
        invoice = self._invoice(sub, "paid")
        self.invoices[invoice["id"]] = invoice
        self._emit("invoice.paid", invoice)
        return invoice

    def update_subscription(self, sub_id: str, **changes: Any) -> dict:
        """Change a subscription (price=..., status=..., cancel_at_period_end=...) and emit updated."""
        with self.lock:
            sub = self.subscriptions[sub_id]
            if "price" in changes:
                sub["items"]["data"][0]["price"] = {"id": changes.pop("price"), "object": "price"}
            sub.update(changes)
            self._emit("customer.subscription.updated", sub)
            return sub

    def fail_payment(self, sub_id: str) -> dict:
        with self.lock:
            sub = self.subscriptions[sub_id]
            invoice = self._invoice(sub, "open")
            self.invoices[invoice["id"]] = invoice
            sub["status"] = "past_due"
            self._emit("invoice.payment_failed", invoice)
            self._emit("customer.subscription.updated", sub)
            return sub

    def pay_invoice(self, sub_id: str) -> dict:
        with self.lock:
            sub = self.subscriptions[sub_id]
            sub["status"] = "active"
            self._pay_invoice(sub)
            self._emit("customer.subscription.updated", sub)
            return sub

    def cancel_subscription(self, sub_id: str) -> dict:
        with self.lock:
            sub = self.subscriptions[sub_id]
            sub.update(status="canceled", canceled_at=self._now(), cancel_at_period_end=False)
            self._emit("customer.subscription.deleted", sub)
            return sub

    def deliver(self, event: SentEvent, url: str) -> int:
        """POST one signed event to a webhook URL over HTTP; return the status code."""
        request = urllib.request.Request(
            url, data=event.payload.encode(), headers=event.signed_headers(self.webhook_secret), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    # --- the HTTP API -------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, body: dict) -> dict:
        with self.lock:
            self.requests.append((method, path))
            if self.fail_next:
                raise StripeFailure(self.fail_next.pop(0), "Injected failure.", "api_error")
            return self._route(method, path, query, body)

    def _route(self, method: str, path: str, query: dict, body: dict) -> dict:
        parts = path.strip("/").split("/")
        match method, parts:
            case "POST", ["v1", "customers"]:
                customer = {"id": self._id("cus"), "object": "customer", "created": self._now(), **body}
                self.customers[customer["id"]] = customer
                return customer
            case "GET", ["v1", "customers", cid]:
                return self._get(self.customers, cid, "customer")
            case "POST", ["v1", "checkout", "sessions"]:
                return self._create_session(body)
            case "GET", ["v1", "checkout", "sessions", sid]:
                return self._get(self.sessions, sid, "checkout session")
            case "POST", ["v1", "billing_portal", "sessions"]:
                self._get(self.customers, body.get("customer", ""), "customer")
                session = {"id": self._id("bps"), "object": "billing_portal.session", **body}
                session["url"] = f"{self.base_url}/portal/{session['id']}"
                self.portal_sessions[session["id"]] = session
                return session
            case "GET", ["v1", "subscriptions", sid]:
                return self._get(self.subscriptions, sid, "subscription")
            case "GET", ["v1", "subscriptions"]:
                status = query.get("status")
                found = [
                    s
                    for s in self.subscriptions.values()
                    if s["customer"] == query.get("customer", s["customer"])
                    and (status == "all" or s["status"] == status or (status is None and s["status"] != "canceled"))
                ]
                return self._list(found, "/v1/subscriptions", query.get("limit"))
            case "GET", ["v1", "invoices"]:
                found = [
                    i
                    for i in self.invoices.values()
                    if i["customer"] == query.get("customer", i["customer"])
                    and i["subscription"] == query.get("subscription", i["subscription"])
                ]
                return self._list(found, "/v1/invoices", query.get("limit"))
            case "POST", ["v1", "billing", "meter_events"]:
                identifier = body.get("identifier") or self._id("mev")
                # Stripe deduplicates meter events by identifier.
                event = self.meter_events.setdefault(
                    identifier, {"object": "billing.meter_event", "identifier": identifier, **body}
                )
                return event
        raise StripeFailure(404, f"Unrecognized request URL ({method}: {path}).", "resource_missing")

    def _create_session(self, body: dict) -> dict:
        self._get(self.customers, body.get("customer", ""), "customer")
        if body.get("mode") != "subscription" or not body.get("line_items"):
            raise StripeFailure(400, "A subscription-mode session needs line_items.", "parameter_missing")
        session = {
            "id": self._id("cs"),
            "object": "checkout.session",
            "status": "open",
            "payment_status": "unpaid",
            "subscription": None,
            **body,
        }
        session["url"] = f"{self.base_url}/checkout/{session['id']}"
        self.sessions[session["id"]] = session
        return session

    @staticmethod
    def _get(store: dict, key: str, kind: str) -> dict:
        if key not in store:
            raise StripeFailure(404, f"No such {kind}: '{key}'")
        return store[key]

    @staticmethod
    def _list(items: list[dict], url: str, limit: str | None = None) -> dict:
        ordered = sorted(items, key=lambda o: o.get("created", 0), reverse=True)
        count = max(1, min(100, int(limit))) if limit and limit.isdigit() else 10
        return {"object": "list", "data": ordered[:count], "has_more": len(ordered) > count, "url": url}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeStripe

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", "req_fake")
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        if self.headers.get("Authorization") != f"Bearer {self.fake.api_key}":
            self._answer(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided."}})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = decode_form(self.rfile.read(length).decode()) if length else {}
        try:
            self._answer(200, self.fake.handle(method, url.path, decode_form(url.query), body))
        except StripeFailure as exc:
            error_type = "api_error" if exc.status >= 500 else "invalid_request_error"
            self._answer(exc.status, {"error": {"type": error_type, "message": exc.message, "code": exc.code}})

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


class FakeStripeServer:
    """Runs a FakeStripe on 127.0.0.1 in a daemon thread."""

    def __init__(self, *, api_key: str, webhook_secret: str, port: int = 0) -> None:
        self.fake = FakeStripe(api_key=api_key, webhook_secret=webhook_secret)
        handler = type("Handler", (_Handler,), {"fake": self.fake})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.fake.base_url = self.base_url
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-stripe", daemon=True)

    def start(self) -> FakeStripeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
