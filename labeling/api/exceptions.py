"""The API's exception handler: DRF's, plus a 400 with a message for the errors Django raises
while reading a request body (larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE``, more fields than
``DATA_UPLOAD_MAX_NUMBER_FIELDS``, a broken multipart stream), which DRF would pass on to
Django's plain-text 400 page."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http.multipartparser import MultiPartParserError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from labeling.api.parsers import max_body_bytes


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = exception_handler(exc, context)
    if response is not None:
        return response
    if isinstance(exc, SuspiciousOperation | BadRequest | MultiPartParserError):
        if isinstance(exc, RequestDataTooBig):
            detail = f"request body is larger than the limit, {max_body_bytes()} bytes"
        else:
            detail = str(exc) or "the request body could not be read"
        return Response(
            {"detail": detail, "code": "bad_request"}, status=status.HTTP_400_BAD_REQUEST
        )
    return None
