"""Tracing (chatbot_saas/tracing.py), exported to a real OTLP/HTTP receiver on loopback.

The receiver is a small HTTP server here that accepts POST /v1/traces and decodes the protobuf
with the exporter's own `opentelemetry.proto`. An answer runs through the real pipeline (the relay
that the widget socket and the API use, a real knowledge base, the fake OpenAI server), and a
Celery task runs on a real worker started with the endpoint set.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chatbot_saas import tracing
from conversations.models import Message
from conversations.relay import AnswerRelay
from conversations.tasks import handoff_pickup_check_task
from tests.conversations.factories import ConversationFactory, conversation_with_document
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import chain
from tests.support.servers import celery_worker, child_env

REPO = Path(__file__).resolve().parents[2]
QUESTION = "How do I reset my password for the billing portal?"
ANSWER = "Open the login page and click Forgot password; the emailed reset link expires after one hour."
HANDBOOK = """# Handbook

## Passwords
To reset your password, open the login page and click "Forgot password". We email a reset link
that expires after one hour.

## Office
Our office is in Lisbon and the coffee machine is on the third floor.
"""


@dataclass
class ExportedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    service: str


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _decode(body: bytes) -> list[ExportedSpan]:
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ExportedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes={kv.key: _value(kv.value) for kv in span.attributes},
                        service=resource.get("service.name", ""),
                    )
                )
    return spans


class OtlpReceiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1: keeps every span posted to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_response(404)
                    self.end_headers()
                    return
                with receiver.changed:
                    receiver.spans.extend(_decode(body))
                    receiver.changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def named(self, name: str) -> list[ExportedSpan]:
        with self.changed:
            return [span for span in self.spans if span.name == name]

    def wait_for(self, found: Callable[[list[ExportedSpan]], bool], timeout: float = 60) -> list[ExportedSpan]:
        """The spans once `found(spans)` holds (another process exports on its own schedule)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not found(self.spans):
                left = deadline - time.monotonic()
                assert left > 0, f"the spans never arrived; got {[s.name for s in self.spans]}"
                self.changed.wait(left)
            return list(self.spans)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    running = OtlpReceiver()
    running.thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()


@pytest.fixture
def tracing_on(receiver: OtlpReceiver) -> Iterator[None]:
    assert tracing.setup(endpoint=receiver.url, service_name="chatbot-saas-test")
    yield
    tracing.reset()


def _strings(spans: list[ExportedSpan]) -> list[str]:
    return [value for span in spans for value in span.attributes.values() if isinstance(value, str)]


def _run_turn(*, bot, tenant, conversation) -> AnswerRelay:
    relay = AnswerRelay(
        bot=bot, tenant=tenant, conversation=conversation, user_message=QUESTION, channel="api", send=None
    )
    async_to_sync(relay.run)()
    return relay


def test_an_answer_turn_is_one_trace_of_the_turn_its_retrieval_and_each_provider_attempt(
    world, settings, tmp_path, fake_openai, receiver, tracing_on
):
    settings.MEDIA_ROOT = tmp_path / "media"
    conversation, _kb = conversation_with_document(world.tenant_a, text=HANDBOOK, name="Support")
    bot = conversation.bot
    bot.model_chain = chain("openai:gpt-4o-mini", "openai:gpt-4o")
    bot.save()
    fake_openai.then(Behaviour(fault="500"))  # the first provider attempt fails over to the second
    fake_openai.then(Behaviour(text=ANSWER))

    relay = _run_turn(bot=bot, tenant=world.tenant_a, conversation=conversation)
    assert tracing.force_flush()

    message = Message.objects.unscoped().get(pk=relay.message_id)
    assert message.status == "complete" and message.content.startswith("Open the login page")
    [turn] = receiver.named("answer.turn")
    [retrieval] = receiver.named("retrieval")
    attempts = sorted(receiver.named("provider.attempt"), key=lambda s: s.attributes["chatbot.attempt"])
    assert turn.parent_span_id == "" and turn.service == "chatbot-saas-test"
    assert turn.attributes == {
        "chatbot.tenant_id": world.tenant_a.pk,
        "chatbot.bot_id": bot.public_id,
        "chatbot.channel": "api",
    }
    for child in [retrieval, *attempts]:
        assert (child.trace_id, child.parent_span_id) == (turn.trace_id, turn.span_id), child.name
        assert child.attributes["chatbot.tenant_id"] == world.tenant_a.pk
        assert child.attributes["chatbot.bot_id"] == bot.public_id
    assert retrieval.attributes["chatbot.kept"] >= 1
    outcomes = [
        (s.attributes["chatbot.attempt"], s.attributes["chatbot.provider"], s.attributes["chatbot.model"])
        + (s.attributes["chatbot.outcome"],)
        for s in attempts
    ]
    assert outcomes == [(1, "openai", "gpt-4o-mini", "error"), (2, "openai", "gpt-4o", "ok")]
    assert attempts[0].attributes["chatbot.error_code"] == message.trace.attempts[0]["code"]


def test_no_span_attribute_carries_the_question_the_answer_or_the_documents_text(
    world, settings, tmp_path, fake_openai, receiver, tracing_on
):
    settings.MEDIA_ROOT = tmp_path / "media"
    conversation, _kb = conversation_with_document(world.tenant_a, text=HANDBOOK, name="Support")
    bot = conversation.bot
    bot.model_chain = chain("openai:gpt-4o-mini")
    bot.save()
    fake_openai.then(Behaviour(text=ANSWER))

    _run_turn(bot=bot, tenant=world.tenant_a, conversation=conversation)
    assert tracing.force_flush()

    strings = _strings(receiver.spans)
    assert {"answer.turn", "retrieval", "provider.attempt"} <= {s.name for s in receiver.spans}
    # Any run of four words of the question, the answer or the document would be content.
    content = f"{QUESTION} {ANSWER} {HANDBOOK}".split()
    shingles = {" ".join(content[i : i + 4]).lower() for i in range(len(content) - 3)}
    leaked = [value for value in strings for shingle in shingles if shingle in value.lower()]
    assert not leaked
    assert not [value for value in strings if "password" in value.lower() or "forgot" in value.lower()]


def test_a_stopped_answer_exports_its_attempt_as_stopped_and_its_spans_close_cleanly(
    world, fake_openai, receiver, tracing_on, caplog
):
    conversation = ConversationFactory(tenant=world.tenant_a, bot__answer_policy="general")
    bot = conversation.bot
    bot.model_chain = chain("openai:gpt-4o-mini")
    bot.save()
    fake_openai.then(Behaviour(text="word " * 200, tokens_per_second=50))
    relay = AnswerRelay(
        bot=bot,
        tenant=world.tenant_a,
        conversation=conversation,
        user_message=QUESTION,
        channel="widget",
        send=None,
    )

    async def stop_after_some_text() -> None:
        turn = asyncio.create_task(relay.run())
        while not relay.text and not turn.done():
            await asyncio.sleep(0.01)
        relay.stop()  # what the visitor's stop button does
        await turn

    async_to_sync(stop_after_some_text)()
    assert tracing.force_flush()

    assert Message.objects.unscoped().get(pk=relay.message_id).status == "partial"
    [turn] = receiver.named("answer.turn")
    [attempt] = receiver.named("provider.attempt")
    assert attempt.parent_span_id == turn.span_id
    assert attempt.attributes["chatbot.outcome"] == "stopped"
    # A span closed in another context than the one it was opened in would log this.
    assert "Failed to detach context" not in caplog.text


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_celery_task_on_a_live_worker_continues_the_trace_of_the_span_that_queued_it(world, receiver, tracing_on):
    conversation = ConversationFactory(tenant=world.tenant_a)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    # Its own queue: the session's live_worker (no endpoint) must not take the task.
    with celery_worker("tracing", queues="tracing-test", **env):
        with tracing.span("test.publish", tenant_id=world.tenant_a.pk) as _published:
            result = handoff_pickup_check_task.apply_async(
                kwargs={"tenant_id": world.tenant_a.pk, "conversation_id": conversation.pk}, queue="tracing-test"
            )
        assert tracing.force_flush()
        spans = receiver.wait_for(lambda spans: any(s.name == "celery.task" for s in spans))

    [published] = [s for s in spans if s.name == "test.publish"]
    [task] = [s for s in spans if s.name == "celery.task"]
    assert task.service == "chatbot-saas-worker"
    assert (task.trace_id, task.parent_span_id) == (published.trace_id, published.span_id)
    assert task.attributes == {
        "chatbot.task": "conversations.tasks.handoff_pickup_check_task",
        "chatbot.tenant_id": world.tenant_a.pk,
        "chatbot.state": "SUCCESS",
    }
    assert result.id


PROBE = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_saas.settings")
import chatbot_saas.asgi  # the web process's start-up
from chatbot_saas.celery import _set_up_tracing
_set_up_tracing()  # the worker's, after the fork
from opentelemetry import trace
from chatbot_saas import tracing
with tracing.span("turn", tenant_id=1) as handle:
    handle.set(outcome="ok")
print(json.dumps({
    "provider": type(trace.get_tracer_provider()).__name__,
    "enabled": tracing.enabled(),
    "no_op_span": tracing.span("x", bot_id="b") is tracing.NO_SPAN,
    "sdk_imported": "opentelemetry.sdk.trace" in __import__("sys").modules,
}))
"""


def test_with_no_endpoint_nothing_is_set_up_and_span_is_the_shared_no_op():
    env = child_env(OTEL_EXPORTER_OTLP_ENDPOINT="", KNOWLEDGE_PRELOAD_EMBEDDER="false")
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe == {"provider": "ProxyTracerProvider", "enabled": False, "no_op_span": True, "sdk_imported": False}
