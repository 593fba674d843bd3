"""Request body parsers that turn every body they cannot take into a 400 with a message.

DRF's parsers raise ``ParseError`` (400) for malformed JSON, but a body nested a thousand
levels deep makes ``json.loads`` raise ``RecursionError``, which DRF lets through as a 500,
and a form or multipart body is read whatever its size. These parsers:

- refuse a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (Django's own limit, 2.5 MB by
  default) before reading it, by its Content-Length;
- decode JSON with the request's charset, refusing an unknown one or invalid bytes;
- refuse JSON nested deeper than ``MAX_JSON_DEPTH`` levels (no API body nests more than 3);
- give every refusal as ``ParseError``: ``{"detail": "..."}`` with status 400.

``labeling.api.exceptions.api_exception_handler`` does the same for the errors Django raises
while reading a body (too big, too many fields, a broken multipart stream).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils.json import strict_constant

MAX_JSON_DEPTH = 32


def max_body_bytes() -> int:
    limit = getattr(settings, "DATA_UPLOAD_MAX_MEMORY_SIZE", None)
    return int(limit) if limit is not None else 2_621_440


def check_content_length(parser_context: Mapping[str, Any] | None) -> None:
    """ParseError when the request says its body is larger than the limit."""
    request = (parser_context or {}).get("request")
    if request is None:
        return
    meta = request._request.META if hasattr(request, "_request") else request.META
    try:
        length = int(meta.get("CONTENT_LENGTH") or 0)
    except (TypeError, ValueError):
        raise ParseError("Content-Length is not a number") from None
    limit = max_body_bytes()
    if length > limit:
        raise ParseError(f"request body of {length} bytes is larger than the limit, {limit}")


def json_depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` (parsed JSON) nests lists and objects more than ``limit`` deep; an
    explicit stack, so that the check itself cannot recurse too deeply."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class BoundedJSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        check_content_length(parser_context)
        if stream is None:
            raise ParseError("JSON parse error - empty body")
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        raw = stream.read(max_body_bytes() + 1)
        if len(raw) > max_body_bytes():
            raise ParseError(f"request body is larger than the limit, {max_body_bytes()} bytes")
        try:
            text = raw.decode(encoding)
        except LookupError:
            raise ParseError(f"unsupported charset {encoding!r}") from None
        except UnicodeDecodeError as exc:
            raise ParseError(f"the body is not valid {encoding}: {exc.reason}") from None
        parse_constant = strict_constant if self.strict else None
        try:
            data = json.loads(text, parse_constant=parse_constant)
        except RecursionError:
            raise ParseError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        # Counting brackets (in C) first spares the walk for the usual small body.
        brackets = text.count("[") + text.count("{")
        if brackets > MAX_JSON_DEPTH and json_depth_exceeds(data, MAX_JSON_DEPTH):
            raise ParseError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
        return data


class BoundedFormParser(parsers.FormParser):
    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        check_content_length(parser_context)
        return super().parse(stream, media_type, parser_context)


class BoundedMultiPartParser(parsers.MultiPartParser):
    """Multipart with the same size limit for the whole body (Django's upload handlers would
    otherwise spool any file part to disk, however large)."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        check_content_length(parser_context)
        return super().parse(stream, media_type, parser_context)
