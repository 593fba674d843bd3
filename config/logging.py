"""A one-line JSON log formatter, selected with LOG_FORMAT=json.

Each record becomes {"ts", "level", "logger", "message", ...}: the standard fields, any
`extra={...}` the caller passed, and the formatted traceback under "exc_info".
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=_fallback, ensure_ascii=False)


def _fallback(value: Any) -> str:
    # Django attaches the request (and the DB connection) to some records: keep them short.
    request_line = getattr(value, "method", None), getattr(value, "path", None)
    if all(request_line):
        return f"{request_line[0]} {request_line[1]}"
    return repr(value)[:200]
