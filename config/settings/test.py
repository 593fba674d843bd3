from .base import *  # noqa: F403
from .base import cache_setting

# One process runs the tests: per-process memory keeps query counts free of cache queries.
# Tests of the shared caches (tests/config/test_shared_limits.py) configure their own.
CACHES = {"default": cache_setting("locmemcache://tests")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False

WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
