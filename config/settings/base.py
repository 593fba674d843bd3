"""Settings shared by every environment; values come from environment variables.

SQLite by default, PostgreSQL through DATABASE_URL; Redis (or the embedded
filesystem broker) through CELERY_BROKER_URL.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-dev-key-change-me")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from the package: no CDN
    "labeling",
    "training",
    "research",
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
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions serialize writers, so a lease is never handed out twice on SQLite.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # psycopg prepares a statement on its Nth execution on a connection. Only the labeling hot
    # path's hand-written statements bind server-side (labeling.hot_sql.cursor), so only
    # they are prepared; the ORM keeps Django's client-side binding. 0 turns it off (needed
    # behind a transaction-pooling pgbouncer older than 1.21).
    _prepare_threshold = env.int("DATABASE_PREPARE_THRESHOLD", default=1)
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "prepare_threshold", _prepare_threshold if _prepare_threshold > 0 else None
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "labeling:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# The dashboard serves plotly.js from the installed plotly package (research/finders.py).
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "research.finders.PlotlyFinder",
]

# Model artifacts (reward-model and policy versions, checkpoints).
ARTIFACTS_DIR = Path(env("PREFERENCE_LOOP_ARTIFACTS", default=str(VAR_DIR / "artifacts")))


# Throttles, login limits, worker heartbeats and the loop's debounce live in the cache: it must
# be shared by every process. Redis (CACHE_URL=redis://...) or, by default, a table in the
# database (made by `manage.py migrate`: labeling/apps.py runs `createcachetable`).
def cache_setting(default: str) -> dict:
    """The cache of ``CACHE_URL`` (else ``default``); a database cache counts atomically."""
    cache = env.cache("CACHE_URL", default=default)
    if cache["BACKEND"] == "django.core.cache.backends.db.DatabaseCache":
        cache["BACKEND"] = "config.cache.AtomicDatabaseCache"  # an atomic incr (config/cache.py)
    return cache


CACHES = {"default": cache_setting("dbcache://preference_loop_cache")}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        # DRF's TokenAuthentication with a token -> user cache of a few seconds per process.
        "labeling.api.authentication.CachedTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Every body that cannot be parsed (too deep, too big, badly encoded) is a 400 with a
    # message, never a 500 (labeling/api/parsers.py, labeling/api/exceptions.py).
    "DEFAULT_PARSER_CLASSES": [
        "labeling.api.parsers.BoundedJSONParser",
        "labeling.api.parsers.BoundedFormParser",
        "labeling.api.parsers.BoundedMultiPartParser",
    ],
    "EXCEPTION_HANDLER": "labeling.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    # Every API view is throttled (labeling/api/throttling.py): per user, or per client address
    # when anonymous, under the view's throttle_scope or "api".
    "DEFAULT_THROTTLE_CLASSES": ["labeling.api.throttling.FixedWindowScopedThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "api": env("THROTTLE_API", default="600/min"),
        "label_submit": env("THROTTLE_LABEL_SUBMIT", default="120/min"),
        "lease": env("THROTTLE_LEASE", default="240/min"),
        "login": env("THROTTLE_LOGIN", default="10/min"),
    },
    # Behind N reverse proxies, the client address is the Nth address from the right of
    # X-Forwarded-For (throttles and login limits); 0 (the default) takes REMOTE_ADDR.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0) or None,
}
# Login limits (labeling/services/login_limits.py) on every password check (login page, admin
# login, API token): failures are counted per username across addresses and per client address
# across usernames over LOGIN_FAILURE_WINDOW seconds; reaching a limit locks that username or
# address out for LOGIN_LOCKOUT seconds, doubling with each further lockout (up to
# LOGIN_LOCKOUT_MAX) until LOGIN_LOCKOUT_MEMORY seconds pass without one.
LOGIN_FAILURES_PER_USERNAME = env.int("LOGIN_FAILURES_PER_USERNAME", default=10)
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=20)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=900)
LOGIN_LOCKOUT = env.int("LOGIN_LOCKOUT", default=60)
LOGIN_LOCKOUT_MAX = env.int("LOGIN_LOCKOUT_MAX", default=86400)
LOGIN_LOCKOUT_MEMORY = env.int("LOGIN_LOCKOUT_MEMORY", default=86400)
# Labeling hot path (labeling/api, labeling/services): a revoked API token keeps working for at
# most API_TOKEN_CACHE_SECONDS in a process; `remaining` in a lease is refreshed every
# LABELING_REMAINING_CACHE_SECONDS; the loop's tick after labels is debounced per task over
# LABELING_TICK_DEBOUNCE_SECONDS. 0 turns each off.
API_TOKEN_CACHE_SECONDS = env.float("API_TOKEN_CACHE_SECONDS", default=5.0)
LABELING_REMAINING_CACHE_SECONDS = env.float("LABELING_REMAINING_CACHE_SECONDS", default=5.0)
LABELING_TICK_DEBOUNCE_SECONDS = env.float("LABELING_TICK_DEBOUNCE_SECONDS", default=2.0)
SPECTACULAR_SETTINGS = {
    "TITLE": "Preference Loop API",
    "DESCRIPTION": "Label best-of-K comparisons; export labels.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ loads Swagger UI from drf-spectacular-sidecar's static files, so that it
    # renders on an offline or firewalled install.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Task.kind and Label.kind are both called "kind": name their enums apart.
    "ENUM_NAME_OVERRIDES": {
        "TaskKindEnum": "labeling.models.Task.Kind",
        "LabelKindEnum": "labeling.models.Label.Kind",
    },
}

# Celery: Redis in production and CI; `make demo` uses the filesystem broker (no service).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Light work (scheduler tick, lease reclaim) on "default"; generation and scoring on "sampling";
# reward-model and PPO training on "training" (GPU workers: concurrency 1, prefetch 1).
CELERY_TASK_ROUTES = {
    "training.tasks.sample_*": {"queue": "sampling"},
    "training.tasks.score_*": {"queue": "sampling"},
    "training.tasks.train_*": {"queue": "training"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=4 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 120
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis redelivers an unacknowledged task after the visibility timeout: keep it above the
# longest task so a slow training run is not handed to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 3600}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "broker"
    (_queue_dir / "out").mkdir(parents=True, exist_ok=True)
    (_queue_dir / "processed").mkdir(parents=True, exist_ok=True)
    (_queue_dir / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "out"),
        "data_folder_out": str(_queue_dir / "out"),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Operations (config/heartbeat.py, config/health.py): workers write a heartbeat into the shared
# cache; /healthz fails the worker check when the newest is older than HEALTH_WORKER_MAX_AGE.
CELERY_IMPORTS = ["config.heartbeat"]
HEALTH_WORKER_MAX_AGE = env.int("HEALTH_WORKER_MAX_AGE", default=120)
# Beat entries: add yours to this dict (don't rebind it), e.g. CELERY_BEAT_SCHEDULE["tick"] = ...
CELERY_BEAT_SCHEDULE: dict = {
    "ops-heartbeat": {"task": "ops.heartbeat", "schedule": 30.0, "options": {"expires": 60}},
}
# The online loop (training/tasks.py): a scheduler tick per active task; training runs beat
# every TRAINING_HEARTBEAT_SECONDS and are failed (then rescheduled) after TRAINING_STALE_SECONDS.
TRAINING_TICK_SECONDS = env.float("TRAINING_TICK_SECONDS", default=20.0)
TRAINING_HEARTBEAT_SECONDS = env.float("TRAINING_HEARTBEAT_SECONDS", default=15.0)
TRAINING_STALE_SECONDS = env.int("TRAINING_STALE_SECONDS", default=300)
# Processes a training run's body uses (training/launcher.py): 1 runs it in the worker's own
# process; N > 1 or "gpus" (one per visible GPU) launch it under torchrun, data-parallel.
TRAINING_PROCESSES = env("TRAINING_PROCESSES", default="1")
CELERY_BEAT_SCHEDULE["training-tick-all"] = {
    "task": "training.tasks.tick_all",
    "schedule": TRAINING_TICK_SECONDS,
    "options": {"expires": TRAINING_TICK_SECONDS},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logging.JsonFormatter"},
    },
    # LOG_FORMAT=json: one JSON object per line (config/logging.py).
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if env("LOG_FORMAT", default="plain") == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Celery's own lines (a task received and succeeded, beat sending one, the broker
        # connection): CELERY_LOG_LEVEL=WARNING leaves them out (the demo's console).
        "celery": {"level": env("CELERY_LOG_LEVEL", default="INFO")},
    },
}
