"""The Celery app. Workers import torch through training tasks; the web process never does."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("preference_loop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
