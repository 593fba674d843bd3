from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)

# Serve static files straight from the finders (no collectstatic for development or the demo).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
