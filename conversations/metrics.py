"""Prometheus metrics for conversations, served at /metrics by each web process.

Labels stay low-cardinality (channel, outcome, provider, model, scope): never tenant or visitor ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)

TIME_TO_FIRST_TOKEN = Histogram(
    "chat_time_to_first_token_seconds",
    "From the visitor's message to the first answer text sent.",
    ["channel"],
    buckets=_LATENCY_BUCKETS,
)
ANSWER_LATENCY = Histogram(
    "chat_answer_latency_seconds",
    "From the visitor's message to the end of the answer.",
    ["channel", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
TOKENS = Counter("chat_tokens_total", "Tokens used by answers.", ["direction", "model"])
COST = Counter("chat_cost_usd_total", "Provider cost of answers, in US dollars.", ["model"])
TURNS = Counter("chat_turns_total", "Answered turns by outcome.", ["channel", "outcome"])
PROVIDER_ERRORS = Counter(
    "chat_provider_errors_total", "Failed provider attempts, from the turn traces.", ["provider", "model"]
)
BREAKER_OPEN = Gauge(
    "chat_breaker_open", "1 while a provider+model circuit breaker is open (seen in a turn).", ["provider", "model"]
)
RATE_LIMIT_REFUSALS = Counter("chat_rate_limit_refusals_total", "Requests refused by a rate limit.", ["scope"])
ACTIVE_STREAMS = Gauge("chat_active_streams", "Answers streaming in this process right now.")
TURN_QUEUE_LENGTH = Gauge("chat_turn_queue_length", "Turns waiting for an opening slot in this process (admission.py).")
TURN_QUEUE_WAIT = Histogram(
    "chat_turn_queue_wait_seconds",
    "How long turns waited for an opening slot (0 when one was free).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
TURN_REFUSALS = Counter("chat_turn_busy_refusals_total", "Turns refused with server_busy (admission.py).")
