"""LOG_FORMAT=json: one parseable JSON object per record."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from config.logging import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]


def test_record_becomes_one_json_line_with_extras_and_traceback():
    logger = logging.getLogger("tests.json")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord(
            "tests.json",
            logging.ERROR,
            __file__,
            1,
            "label %s failed",
            (7,),
            sys.exc_info(),
            extra={"task_id": 3},
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["level"] == "ERROR"
    assert payload["logger"] == "tests.json"
    assert payload["message"] == "label 7 failed"
    assert payload["task_id"] == 3
    assert "ValueError: boom" in payload["exc_info"]
    assert payload["ts"].endswith("+00:00")


def test_unserializable_extras_do_not_break_logging():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hi", (), None)
    record.request = object()
    assert json.loads(JsonFormatter().format(record))["request"].startswith("<object")


def test_log_format_env_selects_json_in_settings():
    env = {**os.environ, "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    code = "import django, logging; django.setup(); logging.getLogger('probe').warning('hello')"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    payload = json.loads(result.stderr.strip().splitlines()[-1])
    assert payload["message"] == "hello"
    assert payload["level"] == "WARNING"
