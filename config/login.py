"""The login page and the admin's login under the login limits of
``labeling.services.login_limits``: failures counted per username and per client address,
lockouts that double. A locked-out login gets status 429 and a Retry-After header without its
password being checked; the page shows the form again with the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import LoginView
from django.core.exceptions import NON_FIELD_ERRORS
from django.forms import Form
from django.forms.utils import ErrorDict
from django.http import HttpRequest, HttpResponse

from labeling.services import login_limits


def _username(request: HttpRequest) -> str:
    return str(request.POST.get("username", ""))[:150]


def _failed_login(form: Form | None) -> bool:
    """Whether a login form was refused for its credentials (not for a missing field)."""
    return form is not None and form.has_error(NON_FIELD_ERRORS, "invalid_login")


def _count_failure(request: HttpRequest) -> None:
    login_limits.record_failure(
        address=login_limits.client_address(request), username=_username(request)
    )


def _locked_out(request: HttpRequest) -> int:
    return login_limits.seconds_locked_out(
        address=login_limits.client_address(request), username=_username(request)
    )


class RateLimitedLoginView(LoginView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        retry_after = _locked_out(request)
        if not retry_after:
            return super().post(request, *args, **kwargs)
        form = self.get_form_class()(request, initial={"username": _username(request)})
        # An unbound form keeps errors set here: the template shows them as non-field errors.
        message = login_limits.locked_out_message(retry_after)
        form._errors = ErrorDict({NON_FIELD_ERRORS: form.error_class([message])})  # type: ignore[attr-defined]
        context = self.get_context_data(form=form, rate_limited=True)
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(retry_after)
        return response

    def form_invalid(self, form: Any) -> HttpResponse:
        if _failed_login(form):
            _count_failure(self.request)
        return super().form_invalid(form)


def rate_limited_login(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The same limits around another login view (the admin's): 429 with a short message
    while locked out; a form shown again for bad credentials counts as a failure."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        retry_after = _locked_out(request)
        if retry_after:
            response = HttpResponse(
                login_limits.locked_out_message(retry_after) + "\n",
                status=429,
                content_type="text/plain",
            )
            response["Retry-After"] = str(retry_after)
            return response
        response = view(request, *args, **kwargs)
        context = getattr(response, "context_data", None) or {}
        if _failed_login(context.get("form")):
            _count_failure(request)
        return response

    return wrapper
