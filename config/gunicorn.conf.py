"""Gunicorn settings of the web process (``gunicorn -c config/gunicorn.conf.py config.wsgi``).

The labeling API is short requests that wait on PostgreSQL and Redis for part of their time:
threaded workers (gthread) overlap those waits without more processes' memory. Every value can
be set from the environment; the command line overrides this file.

- GUNICORN_WORKERS (default: the CPU count, at least 2), GUNICORN_THREADS (default 2): each
  thread keeps its own database connection (CONN_MAX_AGE), so PostgreSQL sees
  workers x threads connections per web container.
- GUNICORN_BIND (0.0.0.0:8000), GUNICORN_TIMEOUT (30 s), GUNICORN_KEEPALIVE (75 s),
  GUNICORN_BACKLOG (2048), GUNICORN_MAX_REQUESTS (0: never recycle; jitter 10%),
  GUNICORN_ACCESS_LOG ("-" for stdout, empty for none), GUNICORN_LOG_LEVEL (info).

Keep-alive: a server that closes an idle connection races a client that reuses it at that
moment (the request meets a reset, "Remote end closed connection without response"). The
side that keeps connections open longer must be the server: 75 s is longer than the proxy's
idle upstream timeout (60 s, docker/nginx/nginx.conf.template), so nginx closes first; an idle
connection costs a gthread worker a socket in its poller, not a thread.
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = _int("GUNICORN_WORKERS", max(2, os.cpu_count() or 2))
threads = _int("GUNICORN_THREADS", 2)
worker_class = "gthread" if threads > 1 else "sync"
backlog = _int("GUNICORN_BACKLOG", 2048)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 75)
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Load the app before forking: workers share the imported code's memory (copy on write).
preload_app = True
