"""Optional OpenTelemetry tracing: one `span(name, **attrs)` for every call site, and its set-up.

    with span("retrieval", tenant_id=tenant.pk, bot_id=bot.public_id) as s:
        ...
        s.set(kept=3)

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set. Off means nothing of the SDK is installed: the
global tracer provider stays OpenTelemetry's no-op one and `span()` returns one shared object
whose enter, exit and `set` do nothing (a global read and a call; docs/benchmarks.md has the
figures). On, `setup()` installs an SDK provider with a batch processor that posts OTLP/HTTP
protobuf to `<endpoint>/v1/traces`, and span() starts real spans that are current while open, so
spans opened inside one (also in a database thread: asgiref copies the context) are its children.

What a span may carry: ids, names, counts and outcomes. Never message content, a query, a prompt,
a document's text or an exception's message (a provider's error may quote the prompt): the
attributes are passed explicitly at each call site, and a failure is recorded as the exception's
type name only. Attributes are namespaced `chatbot.<key>`; a span inherits its parent's
`chatbot.tenant_id` and `chatbot.bot_id`, so the stages of a turn need not repeat them.

Celery: `task_published` puts the current trace in the task's headers, `task_started` and
`task_finished` (from the worker's task_prerun/postrun signals, chatbot_saas/celery.py) wrap each
task in a span that continues it.

A leaf any app may import (pyproject.toml's shared-leaves contract): it imports no app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger(__name__)

PREFIX = "chatbot."
# Copied from the parent span to each child (see _inherit_ids_processor).
INHERITED = (f"{PREFIX}tenant_id", f"{PREFIX}bot_id")
DEFAULT_SERVICE_NAMES = {"web": "chatbot-saas-web", "worker": "chatbot-saas-worker", "command": "chatbot-saas-command"}

AttrValue = str | int | float | bool | None

_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
# Open Celery task spans in this worker process, by task id: (span, context token).
_tasks: dict[str, tuple[trace.Span, object]] = {}


class _NoSpan:
    """What span() returns while tracing is off: one shared object that does nothing."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def set(self, **attrs: AttrValue) -> None:
        return None


NO_SPAN = _NoSpan()


class _Span:
    """The handle a real span() yields: `set(**attrs)` adds attributes under the same rules."""

    __slots__ = ("otel",)

    def __init__(self, otel: trace.Span) -> None:
        self.otel = otel

    def set(self, **attrs: AttrValue) -> None:
        self.otel.set_attributes(_attributes(attrs))


def _attributes(attrs: Mapping[str, AttrValue]) -> dict[str, str | int | float | bool]:
    return {PREFIX + key: value for key, value in attrs.items() if value is not None}


def span(name: str, **attrs: AttrValue) -> AbstractContextManager[_NoSpan | _Span]:
    """A span named `name` around the block, with `attrs` as `chatbot.<key>` attributes (None
    values are left out). Pass ids and outcomes only, never text a visitor or a document wrote."""
    if _tracer is None:
        return NO_SPAN
    return _real_span(_tracer, name, attrs)


@contextmanager
def _real_span(tracer: trace.Tracer, name: str, attrs: Mapping[str, AttrValue]) -> Iterator[_Span]:
    # The SDK would record the exception with its message: we keep the type name only.
    with tracer.start_as_current_span(
        name, attributes=_attributes(attrs), record_exception=False, set_status_on_exception=False
    ) as otel:
        try:
            yield _Span(otel)
        except (GeneratorExit, asyncio.CancelledError):
            # The caller stopped (a visitor's stop, a closed stream): not an error of this span.
            otel.set_attribute(f"{PREFIX}cancelled", True)
            raise
        except Exception as exc:
            otel.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            otel.set_attribute(f"{PREFIX}error_type", type(exc).__name__)
            raise


def enabled() -> bool:
    return _tracer is not None


# --- set-up ------------------------------------------------------------------------------------
def setup(*, endpoint: str, service_name: str) -> bool:
    """Install an SDK tracer provider exporting to `endpoint` (an OTLP/HTTP base URL). An empty
    endpoint installs nothing and returns False. Called once per process at start."""
    global _tracer, _provider
    if not endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The SDK's own environment (OTEL_TRACES_SAMPLER, OTEL_BSP_*) still applies to the provider.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(_inherit_ids_processor())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
    if _provider is None:
        # The global one can be set once per process; a later setup() (tests) only swaps ours.
        trace.set_tracer_provider(provider)
    else:
        _provider.shutdown()
    _provider = provider
    _tracer = provider.get_tracer("chatbot_saas")
    logger.info("tracing: exporting spans of %s to %s", service_name, endpoint)
    return True


def setup_from_settings(role: str) -> bool:
    """setup() from OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME (default per role: web,
    worker, command)."""
    from django.conf import settings

    name = settings.OTEL_SERVICE_NAME or DEFAULT_SERVICE_NAMES[role]
    return setup(endpoint=settings.OTEL_EXPORTER_OTLP_ENDPOINT, service_name=name)


def force_flush(timeout_millis: int = 10_000) -> bool:
    """Export the finished spans now (tests, and commands about to exit)."""
    return _provider.force_flush(timeout_millis) if _provider is not None else True


def reset() -> None:
    """Turn tracing off in this process (tests): span() is the no-op again."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    # The global provider stays installed (it cannot be unset), but no span of ours reaches it.
    _tracer = None
    _tasks.clear()


def _inherit_ids_processor() -> Any:
    """A span processor that copies the tenant and bot ids from the parent span, when the child
    does not set its own: the retrieval and provider spans of a turn carry the turn's ids."""
    from opentelemetry.sdk.trace import SpanProcessor

    class InheritIds(SpanProcessor):
        def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
            inherited = getattr(trace.get_current_span(parent_context), "attributes", None) or {}
            own = span.attributes or {}
            for key in INHERITED:
                if key in inherited and key not in own:
                    span.set_attribute(key, inherited[key])

    return InheritIds()


# --- Celery ------------------------------------------------------------------------------------
def task_published(headers: dict[str, Any] | None) -> None:
    """before_task_publish: carry the current trace to the worker in the task's headers."""
    if _tracer is not None and headers is not None:
        propagate.inject(headers)


def task_started(*, task_id: str, task_name: str, request: Any) -> None:
    """task_prerun: open the task's span, continuing the publisher's trace when it sent one."""
    if _tracer is None:
        return
    carrier = {key: value for key in ("traceparent", "tracestate") if (value := getattr(request, key, None))}
    parent = propagate.extract(carrier)
    otel = _tracer.start_span("celery.task", context=parent, attributes=_attributes({"task": task_name}))
    token = otel_context.attach(trace.set_span_in_context(otel, parent))
    _tasks[task_id] = (otel, token)


def task_finished(*, task_id: str, state: str | None) -> None:
    """task_postrun: close the task's span with its final state."""
    opened = _tasks.pop(task_id, None)
    if opened is None:
        return
    otel, token = opened
    otel.set_attribute(f"{PREFIX}state", state or "")
    if state == "FAILURE":
        otel.set_status(trace.Status(trace.StatusCode.ERROR))
    otel_context.detach(token)  # type: ignore[arg-type]
    otel.end()


def set_current(**attrs: AttrValue) -> None:
    """Add attributes to the current span, if tracing is on (e.g. a task's tenant, once known)."""
    if _tracer is not None:
        trace.get_current_span().set_attributes(_attributes(attrs))
