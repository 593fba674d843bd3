from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False

WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
