"""The labeling API: thin views over labeling.services and labeling.selectors.

Domain errors raised by the services become 4xx responses ``{"detail": ..., "code": ...}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import authenticate
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import exports, selectors
from labeling.api.serializers import (
    ErrorSerializer,
    LabelSerializer,
    LabelSubmitSerializer,
    LeaseSerializer,
    TaskSerializer,
    TokenRequestSerializer,
    TokenSerializer,
    label_payload,
)
from labeling.api.throttling import FixedWindowScopedThrottle
from labeling.models import Label
from labeling.permissions import IsStaff
from labeling.selectors import Progress
from labeling.services import labels as label_services
from labeling.services import leasing, login_limits

ERROR_STATUS: dict[type[Exception], int] = {
    label_services.ComparisonNotFound: status.HTTP_404_NOT_FOUND,
    label_services.NoLiveLease: status.HTTP_409_CONFLICT,
    label_services.InvalidLabel: status.HTTP_400_BAD_REQUEST,
    label_services.LabelConflict: status.HTTP_409_CONFLICT,
    leasing.TaskNotActive: status.HTTP_409_CONFLICT,
}


def error(detail: str, code: str, http_status: int, **extra: Any) -> Response:
    return Response({"detail": detail, "code": code, **extra}, status=http_status)


def domain_error(exc: Exception) -> Response:
    code = getattr(exc, "code", "error")
    return error(str(exc), code, ERROR_STATUS.get(type(exc), status.HTTP_400_BAD_REQUEST))


def invalid_input(errors: Any) -> Response:
    return error("invalid input", "invalid", status.HTTP_400_BAD_REQUEST, errors=errors)


def task_not_found(task_id: int) -> Response:
    return error(f"task {task_id} not found", "not_found", status.HTTP_404_NOT_FOUND)


E400 = OpenApiResponse(ErrorSerializer, description="invalid input")
E403 = OpenApiResponse(ErrorSerializer, description="not allowed (or CSRF token missing)")
E404 = OpenApiResponse(ErrorSerializer, description="not found, or not a task of yours")
E409 = OpenApiResponse(ErrorSerializer, description="conflict")
E429 = OpenApiResponse(ErrorSerializer, description="locked out after failed logins")


class TokenView(APIView):
    """Exchange a username and password for an API token (for programs), under the login
    limits (``labeling.services.login_limits``) and a per-address request rate (``login``)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [FixedWindowScopedThrottle]
    throttle_scope = "login"

    @extend_schema(
        request=TokenRequestSerializer,
        responses={200: TokenSerializer, 400: E400, 429: E429},
        auth=[],
        operation_id="auth_token_create",
    )
    def post(self, request: Request) -> Response:
        serializer = TokenRequestSerializer(data=request.data)
        if not serializer.is_valid():
            return invalid_input(serializer.errors)
        username = serializer.validated_data["username"]
        address = login_limits.client_address(request._request)
        retry_after = login_limits.seconds_locked_out(address=address, username=username)
        if retry_after:
            response = error(login_limits.locked_out_message(retry_after), "locked_out", 429)
            response["Retry-After"] = str(retry_after)
            return response
        user = authenticate(
            request._request, username=username, password=serializer.validated_data["password"]
        )
        if user is None:
            login_limits.record_failure(address=address, username=username)
            return error("wrong username or password", "invalid_credentials", 400)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class TaskListView(APIView):
    @extend_schema(responses={200: TaskSerializer(many=True)}, operation_id="tasks_list")
    def get(self, request: Request) -> Response:
        tasks = selectors.task_list_for_user(user=request.user)
        return Response(TaskSerializer(tasks, many=True).data)


class NextView(APIView):
    throttle_classes = [FixedWindowScopedThrottle]
    throttle_scope = "lease"

    @extend_schema(
        responses={
            200: LeaseSerializer,
            204: OpenApiResponse(description="nothing left to label"),
            404: E404,
        },
        operation_id="tasks_next",
    )
    def get(self, request: Request, task_id: int) -> Response:
        task = selectors.get_lease_task(user=request.user, task_id=task_id)
        if task is None:
            return task_not_found(task_id)
        try:
            assignment = leasing.lease_next(task=task, labeler=request.user)
        except leasing.LeasingError as exc:
            return domain_error(exc)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        progress: Progress = {
            "labeled_by_me": task.labeled_by_me,  # type: ignore[attr-defined]
            "remaining": selectors.remaining_estimate(task_id=task.pk),
        }
        return Response(LeaseSerializer.payload(assignment, progress))


_LABEL_KINDS = frozenset(Label.Kind.values)  # LabelSubmitSerializer's kind choices


def _is_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def canonical_label_submit(data: Any) -> dict[str, Any] | None:
    """The submit body's fields when they are already what ``LabelSubmitSerializer`` would
    return (JSON integers in range, a known kind, no other keys), else None: the labeling
    client's usual body skips the serializer (its per-instance field copies cost more than
    the rest of the view), anything else gets its validation and error messages."""
    if type(data) is not dict or not data.keys() <= {
        "comparison_id",
        "kind",
        "choice",
        "time_spent_ms",
    }:
        return None
    comparison_id = data.get("comparison_id")
    kind = data.get("kind")
    choice = data.get("choice")
    time_spent_ms = data.get("time_spent_ms", 0)
    if not (
        _is_int(comparison_id, 1, 2**63 - 1)
        and type(kind) is str
        and kind in _LABEL_KINDS
        and (choice is None or _is_int(choice, 0, 2**63 - 1))
        and _is_int(time_spent_ms, 0, 2**31 - 1)
    ):
        return None
    return {
        "comparison_id": comparison_id,
        "kind": kind,
        "choice": choice,
        "time_spent_ms": time_spent_ms,
    }


class LabelCreateView(APIView):
    throttle_classes = [FixedWindowScopedThrottle]
    throttle_scope = "label_submit"

    @extend_schema(
        request=LabelSubmitSerializer,
        responses={
            201: LabelSerializer,
            200: OpenApiResponse(LabelSerializer, description="identical resubmission"),
            400: E400,
            403: E403,
            404: E404,
            409: E409,
        },
        operation_id="labels_create",
    )
    def post(self, request: Request) -> Response:
        fields = canonical_label_submit(request.data)
        if fields is None:
            serializer = LabelSubmitSerializer(data=request.data)
            if not serializer.is_valid():
                return invalid_input(serializer.errors)
            fields = dict(serializer.validated_data)
        try:
            label, created = label_services.submit_label(labeler=request.user, **fields)
        except label_services.LabelError as exc:
            return domain_error(exc)
        return Response(
            label_payload(label),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class IgnoreFormatParameter(DefaultContentNegotiation):
    """The export's ``?format=`` names the export format, not a DRF renderer."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class ExportView(APIView):
    permission_classes = [IsStaff]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = IgnoreFormatParameter

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format", OpenApiTypes.STR, enum=list(exports.FORMATS), default="paper"
            )
        ],
        responses={
            (200, "application/jsonl"): OpenApiResponse(
                OpenApiTypes.STR, description="one JSON object per line"
            ),
            400: E400,
            403: E403,
            404: E404,
        },
        operation_id="tasks_export",
    )
    def get(self, request: Request, task_id: int) -> Any:
        export_format = request.query_params.get("format", "paper")
        if export_format not in exports.FORMATS:
            return error(f"format must be one of {', '.join(exports.FORMATS)}", "invalid", 400)
        task = selectors.get_export_task(task_id=task_id)
        if task is None:
            return task_not_found(task_id)
        return exports.jsonl_response(task=task, export_format=export_format)
