"""Settings: one module, 12-factor environment variables with safe development defaults.

Variables (shared/API.md, Settings): DATABASE_URL, SECRET_KEY, DEBUG, ALLOWED_HOSTS, CELERY_BROKER_URL,
CELERY_TASK_ALWAYS_EAGER, SECURE_SSL_REDIRECT. With no DATABASE_URL an embedded PostgreSQL is started
(billing_project/embedded_db.py); PostgreSQL is the only engine supported.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# Off unless asked for: a debug page shows settings and the environment to whoever triggers an error.
# `make demo` and the test settings (tests/settings.py) turn it on for local work.
DEBUG = env.bool("DEBUG", default=False)
_DEV_SECRET = "dev-only-insecure-secret-key-change-me-in-production-0123456789"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
PRODUCT_NAME = "Ledgerline"

INSTALLED_APPS = [
    "backoffice.admin_site.BillingAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "simple_history",
    "djmoney",
    "core",
    "catalog",
    "customers",
    "metering",
    "wallets",
    "invoicing",
    "webhooks",
    "backoffice",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "core.middleware.AdminGuardMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "core.middleware.ApiAuditMiddleware",
]

ROOT_URLCONF = "billing_project.urls"
WSGI_APPLICATION = "billing_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL only -------------------------------------------------------------------
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    # A Unix-socket directory may be given percent-encoded as the host: postgres://user@%2Frun%2Fpg/name
    DATABASES["default"]["HOST"] = unquote(DATABASES["default"].get("HOST") or "")
else:
    from billing_project.embedded_db import embedded_database

    DATABASES = {"default": embedded_database(BASE_DIR)}
if DATABASES["default"]["ENGINE"] not in ("django.db.backends.postgresql",):
    raise RuntimeError("PostgreSQL is the only supported database: DATABASE_URL must be postgres://...")
# Persistent connections (seconds); CONN_MAX_AGE overrides the URL's default. 0 = one per request.
if "CONN_MAX_AGE" in env.ENVIRON:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE")
DATABASES["default"].setdefault("CONN_MAX_AGE", 0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("TEST", {})
# The billing run's per-boundary statements are prepared on the server (core/prepared.py); false behind a pooler
# that cannot keep prepared statements (PgBouncer in transaction mode without max_prepared_statements).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Dates on every admin page in the project's one format, "1 Mar 2026, 14:05" (core.instants).
FORMAT_MODULE_PATH = ["billing_project.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []

# --- Money ---------------------------------------------------------------------------------------
# The configured currency list. Model fields take core.money.CURRENCY_CHOICES (a pinned
# constant), so a change of this list never churns migrations.
CURRENCIES = tuple(env.list("CURRENCIES", default=["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "INR"]))
DEFAULT_CURRENCY = "USD"

# --- REST API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["core.auth.HasApiKeyScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    # No ?format= override: a response's type follows the Accept header only (the schema lists no such parameter).
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_PAGINATION_CLASS": "core.api.Pagination",
    "PAGE_SIZE": 50,
    "COERCE_DECIMAL_TO_STRING": True,
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "core.schema.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "ingest": env.str("THROTTLE_INGEST", default="6000/min"),
        "read": env.str("THROTTLE_READ", default="1200/min"),
        "write": env.str("THROTTLE_WRITE", default="600/min"),
        # requests with no key or a bad one, per client address (core.throttling)
        "anon": env.str("THROTTLE_ANON", default="60/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": f"{PRODUCT_NAME} billing API",
    "DESCRIPTION": "Usage events, entitlements, catalog, subscriptions, wallets and invoices.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "InvoiceStatusEnum": "invoicing.models.Invoice.Status",
        "SubscriptionStatusEnum": "customers.models.Subscription.Status",
        "CreditGrantStatusEnum": "wallets.models.CreditGrant.Status",
        "PlanVersionStatusEnum": "catalog.models.PlanVersion.Status",
        "PlanVersionStatusValueEnum": ["draft", "published"],
        "WalletAppliesToEnum": "wallets.models.Wallet.AppliesTo",
        "WalletAppliesToValueEnum": ["all", "usage"],
        "WalletStatusEnum": "wallets.models.Wallet.Status",
        "AcceptedCurrencyEnum": list(CURRENCIES),
        "CurrencyEnum": "core.money.CURRENCY_CHOICES",
        "AlertKindEnum": ["usage", "spend"],
        "WebhookDeliveryStatusEnum": ["pending", "delivered", "failed"],
    },
    # Swagger UI served from our own static files (drf-spectacular-sidecar): no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# Largest accepted request body; bigger ones get 413 (events/batch is capped at 1,000 events anyway).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)

# --- Cache (throttle buckets): Redis when configured, so every worker process shares them --------
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

# --- Celery --------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
# Tasks run in-process when no broker is configured (the zero-setup demo and local runs).
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="billing")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_TIME_LIMIT = 600
CELERY_TASK_SOFT_TIME_LIMIT = 540
# Usage rollup freshness (docs/metering.md): after events are stored, one rollup refresh is queued at most once
# per this many seconds, so reads right after a burst scan a short raw tail. 0: only the beat schedule (the
# default when tasks run in-process, where the refresh would run inside the ingesting request).
USAGE_ROLLUP_AFTER_INGEST_SECONDS = env.float(
    "USAGE_ROLLUP_AFTER_INGEST_SECONDS", default=0.0 if CELERY_TASK_ALWAYS_EAGER else 1.0
)

# --- Email (low-balance alerts) ------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="billing@localhost")

# --- Security ------------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = 0 if DEBUG else env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG and SECRET_KEY == _DEV_SECRET:
    raise RuntimeError(
        "SECRET_KEY must be set when DEBUG is false (for local development set DEBUG=true, as `make demo` does)"
    )

# Admin sign-in lockout (core.auth): this many failures for one username from one address within
# the window lock that pair out for LOGIN_LOCKOUT_SECONDS.
LOGIN_LOCKOUT_ATTEMPTS = env.int("LOGIN_LOCKOUT_ATTEMPTS", default=5)
LOGIN_LOCKOUT_WINDOW_SECONDS = env.int("LOGIN_LOCKOUT_WINDOW_SECONDS", default=15 * 60)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=15 * 60)
# Reverse proxies in front of the app that append to X-Forwarded-For (0: use REMOTE_ADDR). Client addresses
# for the sign-in lockout and the API's anonymous throttle come from it.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)

# Every statement of an admin request is cancelled after this many milliseconds (0 = no limit); the page
# answers 503. API requests and billing runs are not limited.
ADMIN_STATEMENT_TIMEOUT_MS = env.int("ADMIN_STATEMENT_TIMEOUT_MS", default=30_000)

# --- Billing -------------------------------------------------------------------------------------
# The seller printed on every invoice PDF: the company's legal name, its postal address (lines separated by ";")
# and its tax id (e.g. "GB123456789"). Set them before issuing invoices to customers.
SELLER_NAME = env.str("SELLER_NAME", default=PRODUCT_NAME)
SELLER_ADDRESS = env.str("SELLER_ADDRESS", default="")
SELLER_TAX_ID = env.str("SELLER_TAX_ID", default="")
# Support staff may grant at most this many credits per grant from the admin.
SUPPORT_GRANT_LIMIT = Decimal(env.str("SUPPORT_GRANT_LIMIT", default="1000"))

# --- Webhooks (docs/webhooks.md) ------------------------------------------------------------------------------
# Endpoints on loopback, private or link-local addresses are refused unless DEBUG or this is true.
WEBHOOKS_ALLOW_PRIVATE_NETWORKS = env.bool("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", default=False)
# Seconds a receiver has to connect and to answer; more is a failed try.
WEBHOOKS_TIMEOUT_SECONDS = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=10.0)
# Endpoints one worker sends to at once (one thread each).
WEBHOOKS_SEND_THREADS = env.int("WEBHOOKS_SEND_THREADS", default=8)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
