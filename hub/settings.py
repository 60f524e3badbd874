"""Hirfa settings, read from the environment.

Nothing set gives the embedded default: SQLite in ``data/``, the in-memory
channel layer and the in-process SFU. ``HIRFA_ENV=production`` requires
``DATABASE_URL``, ``REDIS_URL`` and ``SECRET_KEY`` and refuses the in-memory
layer, so a misconfigured deployment stops at start instead of running with
per-process state.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("HIRFA_DATA_DIR", BASE_DIR / "data"))

PRODUCTION = os.environ.get("HIRFA_ENV", "").lower() == "production"
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
# Redis through Sentinel (hub/redis_client.py): "host:port,host:port,..." and the name the
# Sentinels monitor; REDIS_URL then gives only the database number and the password.
REDIS_SENTINELS = [
    (h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]))
    for h in os.environ.get("REDIS_SENTINELS", "").split(",")
    if h.strip()
]
REDIS_SENTINEL_MASTER = os.environ.get("REDIS_SENTINEL_MASTER", "hirfa")

if PRODUCTION:
    missing = [
        name for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY") if not os.environ.get(name)
    ]
    if missing:
        raise ImproperlyConfigured(
            "HIRFA_ENV=production needs these environment variables: " + ", ".join(missing)
        )

# The embedded default gets a fixed development key; production must set its own, long and
# random: the example's placeholder or a short key would let anyone forge sessions and tokens.
EMBEDDED_SECRET_KEY = "hirfa-embedded-development-key-not-for-production"
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY = os.environ.get("SECRET_KEY") or EMBEDDED_SECRET_KEY


def secret_key_problem(key: str) -> str:
    """Why `key` may not sign a production hub, or "" when it may."""
    lowered = key.lower()
    if key == EMBEDDED_SECRET_KEY or "change-me" in lowered or lowered.startswith("django-insecure"):
        return "SECRET_KEY is the example's placeholder"
    if len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < 10:
        return f"SECRET_KEY is too short or too plain (at least {SECRET_KEY_MIN_LENGTH} random characters)"
    return ""


if PRODUCTION and (problem := secret_key_problem(SECRET_KEY)):
    raise ImproperlyConfigured(
        f"HIRFA_ENV=production: {problem}. Generate one with: "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
DEBUG = os.environ.get("HIRFA_DEBUG", "0" if PRODUCTION else "1") == "1"
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    # django-ninja's own static Swagger UI: the CDN one needs an inline script the CSP refuses.
    "ninja",
    "hub",
    "rooms",
    "signaling",
    "frontend",
    "django_tasks",
    "django_tasks_db",
    "gatherings",
    "registry",
]

MIDDLEWARE = [
    # /healthz, /readyz, /metrics: before the host check and the HTTPS redirect (hub/health.py).
    "hub.health.ProbeMiddleware",
    "hub.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files, before sessions and the rest: hashed names cached a year (hub/static_files.py).
    "hub.static_files.StaticFilesMiddleware",
    "hub.security_headers.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After a change, this browser's reads stay on the primary for a moment (hub/replica.py).
    "hub.replica.RecentWriteMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a lockout into hub.throttle.locked_out's page.
    "axes.middleware.AxesMiddleware",
]
AUTHENTICATION_BACKENDS = [
    # Refuses a log-in while its address or account is locked out, before the password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # When the username is none: the e-mail or the phone number.
    "hub.auth.IdentifierBackend",
]

ROOT_URLCONF = "hub.urls"
ASGI_APPLICATION = "hub.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

if DATABASE_URL:
    # Persistent connections: opening one costs ~7 ms and a backend fork, on every
    # database_sync_to_async call otherwise (see docs/performance.md).
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60" if PRODUCTION else "0")),
            conn_health_checks=True,
        )
    }
    # One test database per test run, so that concurrent runs do not trample each other.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
    # psycopg's connection pool, per process (docs/operations.md, "Database"): each hub's
    # threads share at most DATABASE_POOL_MAX connections instead of one each.
    if os.environ.get("DATABASE_POOL_MAX"):
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them instead
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": int(os.environ.get("DATABASE_POOL_MIN", "2")),
            "max_size": int(os.environ["DATABASE_POOL_MAX"]),
            "timeout": float(os.environ.get("DATABASE_POOL_TIMEOUT", "10")),
        }
    # Every PostgreSQL session of the hub starts with these planner settings: its statements
    # are short reads of data held in memory. JIT compiling costs more than such a query
    # (trigram operators' costs reach its threshold); parallel workers for a few thousand
    # rows cost more to start than they save and take the cores other requests need; pages
    # read at random cost about what sequential ones do once cached. The directory's search
    # relied on them (it set them per transaction: three round trips more per search).
    POSTGRES_SESSION_OPTIONS = "-c jit=off -c max_parallel_workers_per_gather=0 -c random_page_cost=1.1"
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = POSTGRES_SESSION_OPTIONS
    # A streaming replica for the pages whose reads may lag a moment (hub/replica.py):
    # the directory, storefronts, product pages and the census. Never migrated, never
    # written; reached within 2 s or the page is read from the primary instead.
    DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
    if DATABASE_REPLICA_URL:
        replica = dj_database_url.parse(
            DATABASE_REPLICA_URL, conn_max_age=DATABASES["default"]["CONN_MAX_AGE"], conn_health_checks=True
        )
        replica.setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
        if "pool" in DATABASES["default"].get("OPTIONS", {}):
            replica["OPTIONS"]["pool"] = dict(DATABASES["default"]["OPTIONS"]["pool"])
        if replica["ENGINE"] == "django.db.backends.postgresql":
            replica["OPTIONS"]["options"] = POSTGRES_SESSION_OPTIONS
        replica["TEST"] = {"MIRROR": "default"}
        DATABASES["replica"] = replica
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "hirfa.sqlite3"),
            # A file, not memory, so that test servers in other processes share it;
            # one per test run, so that concurrent runs do not trample each other.
            "TEST": {"NAME": str(DATA_DIR / f"test-hirfa-{os.getpid()}.sqlite3")},
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DATABASE_ROUTERS = ["hub.replica.ReplicaRouter"]
#: After a member's change, his reads stay on the primary this long (hub/replica.py).
HIRFA_REPLICA_STICKY_SECONDS = float(os.environ.get("HIRFA_REPLICA_STICKY_SECONDS", "10"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "hub.User"

def _channel_layer_host(url: str) -> dict[str, object]:
    # What hub.redis_client.channel_layer_host answers, without importing Django's cache here.
    if not REDIS_SENTINELS:
        return {"address": url, "socket_timeout": None}
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    host: dict[str, object] = {
        "sentinels": REDIS_SENTINELS,
        "master_name": REDIS_SENTINEL_MASTER,
        "sentinel_kwargs": {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
        "socket_timeout": None,
        "db": int((parts.path or "/0").strip("/") or 0),
    }
    if parts.password:
        host["password"] = unquote(parts.password)
    return host


if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Survives a Redis restart: a socket's receive waits instead of failing with 1011.
            "BACKEND": "hub.channel_layer.ResilientRedisChannelLayer",
            "CONFIG": {
                # The URL or the Sentinels, without a read timeout (hub/redis_client.py).
                "hosts": [_channel_layer_host(REDIS_URL)],
                # Group membership outlives the longest socket (see docs/protocol.md).
                "group_expiry": 86400 * 7,
                "capacity": 1000,
                "expiry": 60,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "hub.redis_client.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    if PRODUCTION:
        raise ImproperlyConfigured("HIRFA_ENV=production refuses the in-memory channel layer")
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if os.environ.get("HIRFA_FAST_PASSWORD_HASHER") == "1":
    # Tests and benchmarks create thousands of users; scrypt on each would dominate.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Account throttles (hub/throttle.py). Log-in and the admin's log-in: django-axes, per address
# and per account. Mobile carriers put many artisans behind one address (CGNAT), so the
# address limit is not tiny and the lockout is short.
AXES_FAILURE_LIMIT = int(os.environ.get("HIRFA_LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("HIRFA_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "hub.throttle.client_ip"
AXES_LOCKOUT_CALLABLE = "hub.throttle.locked_out"
AXES_VERBOSE = False
# Sign-ups per address and hour; reset requests per address and hour; reset e-mails per
# account and hour (beyond, the page says "sent" and nothing is sent: no mailbox flood).
HIRFA_SIGNUPS_PER_IP_HOUR = int(os.environ.get("HIRFA_SIGNUPS_PER_IP_HOUR", "5"))
HIRFA_RESETS_PER_IP_HOUR = int(os.environ.get("HIRFA_RESETS_PER_IP_HOUR", "10"))
HIRFA_RESET_MAILS_PER_ACCOUNT_HOUR = int(os.environ.get("HIRFA_RESET_MAILS_PER_ACCOUNT_HOUR", "3"))
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "rooms"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "fr"
LANGUAGES = [("ar", _("Arabic")), ("fr", _("French")), ("en", _("English")), ("kab", _("Kabyle"))]
# Date and number formats Django has none of (Kabyle): hub/formats/<language>/formats.py.
FORMAT_MODULE_PATH = ["hub.formats"]
LOCALE_PATHS = [BASE_DIR / "hub" / "locale"]
TIME_ZONE = "Africa/Algiers"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("HIRFA_STATIC_ROOT", DATA_DIR / "static"))
# Production collects the static files (`hirfa manage collectstatic`; `hirfa serve` does it
# at start) under names with a hash of their content, with gzip and brotli copies; pages
# name the hashed files, which the hub (WhiteNoise) and nginx let browsers keep a year.
# Off (the embedded default, the tests): the apps' files as they are, fresh from disk.
HIRFA_STATIC_FINGERPRINTS = os.environ.get("HIRFA_STATIC_FINGERPRINTS", "1" if PRODUCTION else "0") == "1"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "hub.static_files.FingerprintedStaticStorage"
        if HIRFA_STATIC_FINGERPRINTS
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not HIRFA_STATIC_FINGERPRINTS
WHITENOISE_AUTOREFRESH = not HIRFA_STATIC_FINGERPRINTS
# Names without a hash (sw.js is a view, not among them): a minute, then asked again.
WHITENOISE_MAX_AGE = 0 if DEBUG else 60
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("HIRFA_MEDIA_ROOT", DATA_DIR / "media"))
# Files only views that check permissions may serve (artisan-card photos); never under MEDIA_ROOT.
PRIVATE_MEDIA_ROOT = Path(os.environ.get("HIRFA_PRIVATE_MEDIA_ROOT", DATA_DIR / "private"))
# Behind nginx, permission-checked files are sent by nginx from `internal` locations
# (X-Accel-Redirect, hub/protected_files.py): message images under /media/attachments/,
# card photos under /_private/ (deploy/nginx.conf). The embedded hub streams them itself.
HIRFA_ACCEL_REDIRECT = os.environ.get("HIRFA_ACCEL_REDIRECT", "0") == "1"
HIRFA_ACCEL_MEDIA_PREFIX = "/media/"
HIRFA_ACCEL_PRIVATE_PREFIX = "/_private/"
# Meeting recordings (signaling/sfu/recorder.py writes, signaling/replay.py builds): private
# files, one directory per recording, shared by the SFU workers and the job workers.
HIRFA_RECORDINGS_DIR = Path(os.environ.get("HIRFA_RECORDINGS_DIR", PRIVATE_MEDIA_ROOT / "recordings"))
# Replays are deleted this many days after the recording (0: kept until a host deletes them).
HIRFA_RECORDING_RETENTION_DAYS = int(os.environ.get("HIRFA_RECORDING_RETENTION_DAYS", "180"))
# The budget of one replay build: seconds of ffmpeg per second of recording (plus a minute),
# and bytes of the built replay at most.
HIRFA_RECORDING_BUILD_SECONDS_PER_SECOND = float(os.environ.get("HIRFA_RECORDING_BUILD_SECONDS_PER_SECOND", "3"))
HIRFA_RECORDING_BUILD_MAX_BYTES = int(os.environ.get("HIRFA_RECORDING_BUILD_MAX_BYTES", str(2 * 1024**3)))
DATA_UPLOAD_MAX_MEMORY_SIZE = 6 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 6 * 1024 * 1024

# Background jobs (gathering reminders, e-mails): Django's tasks framework, database backend.
# `hirfa worker` runs them in production; the embedded default runs them in the hub's process.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
HIRFA_EMBEDDED_WORKER = os.environ.get("HIRFA_EMBEDDED_WORKER", "0" if PRODUCTION else "1") == "1"

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "hirfa@localhost")
# The address members reach the site at, for the links in e-mails sent by the job worker
# (which has no request to take it from).
HIRFA_SITE_URL = os.environ.get("HIRFA_SITE_URL", "http://127.0.0.1:8000").rstrip("/")

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
if PRODUCTION:
    # deploy/nginx.conf terminates TLS and says so in X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = os.environ.get("HIRFA_INSECURE_COOKIES") != "1"
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # Plain HTTP is redirected and browsers are told to use HTTPS only, for a year
    # (HIRFA_INSECURE_COOKIES=1 is for a test bench without TLS and turns both off).
    SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE
    SECURE_HSTS_SECONDS = 31536000 if SESSION_COOKIE_SECURE else 0
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# The operations port of SFU and job workers (hub/ops_server.py): loopback unless a
# container's Prometheus must reach it from another one.
HIRFA_OPS_BIND_ADDRESS = os.environ.get("HIRFA_OPS_BIND_ADDRESS", "127.0.0.1")
# Production logs one JSON object per line with its request or connection id (hub/logs.py).
HIRFA_LOG_FORMAT = os.environ.get("HIRFA_LOG_FORMAT", "json" if PRODUCTION else "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "hub.logs.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"}
        | ({"formatter": "json"} if HIRFA_LOG_FORMAT == "json" else {})
    },
    "root": {"handlers": ["console"], "level": os.environ.get("HIRFA_LOG_LEVEL", "INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        # Each job's start and end: kept in production's logs, not printed by `make run`.
        "django_tasks": {"level": "INFO" if PRODUCTION else "WARNING"},
        "django_tasks_db": {"level": "INFO" if PRODUCTION else "WARNING"},
    },
}

# Chat limits: documented in docs/protocol.md and enforced at the edge.
HIRFA_MESSAGE_MAX_CHARS = 4000
HIRFA_FRAME_MAX_BYTES = 16 * 1024
HIRFA_RATE_BURST = int(os.environ.get("HIRFA_RATE_BURST", "10"))
HIRFA_RATE_PER_SECOND = float(os.environ.get("HIRFA_RATE_PER_SECOND", "1"))
HIRFA_HISTORY_PAGE = 50
HIRFA_RESUME_MAX = 500
HIRFA_PING_SECONDS = 25
HIRFA_SEND_QUEUE_MAX = int(os.environ.get("HIRFA_SEND_QUEUE_MAX", "2000"))
HIRFA_ATTACHMENT_MAX_BYTES = 5 * 1024 * 1024
HIRFA_ATTACHMENT_MAX_PIXELS = 24_000_000
# Voice messages: the recorder stops at the cap; 2 minutes of Opus at 32 kbit/s is ~480 kB,
# the byte cap leaves room for browsers that record at a higher rate.
HIRFA_VOICE_MAX_SECONDS = int(os.environ.get("HIRFA_VOICE_MAX_SECONDS", "120"))
HIRFA_VOICE_MAX_BYTES = 4 * 1024 * 1024
HIRFA_AVATAR_MAX_BYTES = 2 * 1024 * 1024

# Meetings (signaling/): where the SFU runs, what it announces, TURN. See docs/protocol.md.
# "embedded": one SFU in each hub process (the default without Redis);
# "workers": `hirfa sfu` processes reached through the channel layer (needs REDIS_URL).
HIRFA_SFU_PLACEMENT = os.environ.get("HIRFA_SFU_PLACEMENT", "workers" if REDIS_URL else "embedded")
if HIRFA_SFU_PLACEMENT not in ("embedded", "workers"):
    raise ImproperlyConfigured("HIRFA_SFU_PLACEMENT must be 'embedded' or 'workers'")
if HIRFA_SFU_PLACEMENT == "workers" and not REDIS_URL:
    raise ImproperlyConfigured("HIRFA_SFU_PLACEMENT=workers needs REDIS_URL")
# The addresses written into the SFU's ICE candidates (a server behind NAT announces its public one).
HIRFA_SFU_ANNOUNCE_ADDRESSES = tuple(
    a.strip()
    for a in os.environ.get("HIRFA_SFU_ANNOUNCE_ADDRESSES", "127.0.0.1").split(",")
    if a.strip()
)
HIRFA_SFU_BIND_ADDRESS = os.environ.get(
    "HIRFA_SFU_BIND_ADDRESS", "0.0.0.0" if PRODUCTION else "127.0.0.1"
)
HIRFA_SFU_PORT_MIN = int(os.environ.get("HIRFA_SFU_PORT_MIN", "40000"))
HIRFA_SFU_PORT_MAX = int(os.environ.get("HIRFA_SFU_PORT_MAX", "40999"))
# Slots (signaling/sfu/README.md): each participant receives this many audio and video m-lines,
# the loudest voices and the last-N videos switched into them (joins of others renegotiate
# nobody); 0 and 0: one m-line per published track.
HIRFA_SFU_AUDIO_SLOTS = int(os.environ.get("HIRFA_SFU_AUDIO_SLOTS", "3"))
HIRFA_SFU_VIDEO_SLOTS = int(os.environ.get("HIRFA_SFU_VIDEO_SLOTS", "9"))
# A worker refreshes its registration this often; one silent for 3 periods is dead. Its alive
# key is kept from a thread (signaling.placement.AliveKeeper) while its event loop has turned
# within HIRFA_SFU_STUCK_SECONDS: a loop busy with media for a few seconds is not "dead".
HIRFA_SFU_HEARTBEAT_SECONDS = float(os.environ.get("HIRFA_SFU_HEARTBEAT_SECONDS", "2"))
HIRFA_SFU_STUCK_SECONDS = float(os.environ.get("HIRFA_SFU_STUCK_SECONDS", "30"))
# Big meetings on several workers (signaling/spread.py): a new participant of a meeting whose
# worker holds this many participants or more goes to the least loaded worker, and the
# workers pipe each other's tracks (signaling/sfu/pipe.py); 0: a meeting stays on one worker.
HIRFA_SFU_SPREAD_LOAD = int(os.environ.get("HIRFA_SFU_SPREAD_LOAD", "0"))
# The address (bound, and given to the other workers) and port (0: any free one) of a
# worker's pipes: plain UDP, so loopback (workers on one host) or a private network only.
HIRFA_SFU_PIPE_ADDRESS = os.environ.get("HIRFA_SFU_PIPE_ADDRESS", "127.0.0.1")
HIRFA_SFU_PIPE_PORT = int(os.environ.get("HIRFA_SFU_PIPE_PORT", "0"))
HIRFA_MEETING_MAX_PARTICIPANTS = int(os.environ.get("HIRFA_MEETING_MAX_PARTICIPANTS", "50"))
# A meeting_answer frame may exceed HIRFA_FRAME_MAX_BYTES up to this (an SDP with many m-lines).
HIRFA_MEETING_ANSWER_MAX_BYTES = 64 * 1024
# Each hub process refreshes its open attendance rows this often; rows silent for 3 periods
# (a crashed process) are closed and a meeting left without participants ends.
HIRFA_MEETING_HEARTBEAT_SECONDS = float(os.environ.get("HIRFA_MEETING_HEARTBEAT_SECONDS", "30"))
# What one member may hold at once (docs/security.md, "Limits").
HIRFA_SOCKETS_PER_MEMBER = int(os.environ.get("HIRFA_SOCKETS_PER_MEMBER", "10"))
# Admission smoothing (hub/admission.py): sockets one hub process lets open at once (the
# rest are closed with 4013 and told when to come back), a quarter of it while its event
# loop runs more than HIRFA_ADMISSION_LAG_MS late (0: never). 0 sockets: no gate, the
# default — each refusal costs a handshake, and on a 5,000-socket storm the refused came
# back so often that the crowd took 4-8 times longer to get in (docs/performance.md).
HIRFA_OPENINGS_AT_ONCE = int(os.environ.get("HIRFA_OPENINGS_AT_ONCE", "0"))
HIRFA_ADMISSION_LAG_MS = float(os.environ.get("HIRFA_ADMISSION_LAG_MS", "100"))
# The order of openings (hub/openings.py): sockets whose session one hub process reads at
# once (the others wait, the newest read first; hub.asgi reads them together, up to 64 in
# one call on the database pool, two such calls at once), and how
# long one may wait before it is dropped unread: daphne drops it at 30 s (hub.cli.OPENING_SECONDS)
# and the bench's clients give up at 30 s counted from their TCP connect, before the hub saw it.
HIRFA_OPENINGS_READ_AT_ONCE = int(os.environ.get("HIRFA_OPENINGS_READ_AT_ONCE", "128"))
HIRFA_OPENING_PATIENCE_SECONDS = float(os.environ.get("HIRFA_OPENING_PATIENCE_SECONDS", "20"))
# Subscriptions one hub process serves at once (rooms/consumers.py, the admission of a
# crowd's subscriptions); their state reads go to the database together, 64 to a call.
HIRFA_SUBSCRIBES_AT_ONCE = int(os.environ.get("HIRFA_SUBSCRIBES_AT_ONCE", "32"))
# Presence in a large room (rooms/presence.py): with more members online than this, a
# `presence_delta` names nobody (the count, `more`) and goes out at most every so many seconds.
HIRFA_PRESENCE_LARGE_ROOM = int(os.environ.get("HIRFA_PRESENCE_LARGE_ROOM", "200"))
HIRFA_PRESENCE_LARGE_ROOM_SECONDS = float(os.environ.get("HIRFA_PRESENCE_LARGE_ROOM_SECONDS", "10"))
# The hub's cyclic garbage collector (hub/collector.py): the young generation is collected
# every this many net allocations (Python's 700), what the start made is frozen out of the
# scans; 0: Python's settings.
HIRFA_GC_YOUNG_THRESHOLD = int(os.environ.get("HIRFA_GC_YOUNG_THRESHOLD", "10000"))
HIRFA_MEETINGS_PER_MEMBER = int(os.environ.get("HIRFA_MEETINGS_PER_MEMBER", "2"))
HIRFA_GROUPS_PER_DAY = int(os.environ.get("HIRFA_GROUPS_PER_DAY", "20"))
# A participant whose peer connection is not connected this long after joining is dropped.
HIRFA_MEETING_CONNECT_SECONDS = float(os.environ.get("HIRFA_MEETING_CONNECT_SECONDS", "20"))
HIRFA_STUN_URLS = [u.strip() for u in os.environ.get("HIRFA_STUN_URLS", "").split(",") if u.strip()]
HIRFA_TURN_URLS = [u.strip() for u in os.environ.get("HIRFA_TURN_URLS", "").split(",") if u.strip()]
HIRFA_TURN_SECRET = os.environ.get("HIRFA_TURN_SECRET", "")
# At most an hour (signaling/turn.py caps it); renewed while the member is in the meeting.
HIRFA_TURN_TTL_SECONDS = int(os.environ.get("HIRFA_TURN_TTL_SECONDS", "3600"))

# Web Push (VAPID, RFC 8292): a P-256 key pair, base64url (raw private scalar, uncompressed
# public point), e.g. from `python manage.py vapid_keys`. Without them, pushes are off.
HIRFA_VAPID_PUBLIC_KEY = os.environ.get("HIRFA_VAPID_PUBLIC_KEY", "")
HIRFA_VAPID_PRIVATE_KEY = os.environ.get("HIRFA_VAPID_PRIVATE_KEY", "")
HIRFA_VAPID_SUBJECT = os.environ.get("HIRFA_VAPID_SUBJECT", "mailto:hirfa@localhost")
