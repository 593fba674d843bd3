"""The URLconf walked into concrete paths, so that tests cover every endpoint, new ones too."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.urls import ResolverMatch, URLPattern, URLResolver, get_resolver, resolve
from rest_framework.views import APIView

BODY_METHODS = ("post", "put", "patch")


def _walk(patterns: list, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def _concrete(route: str, samples: dict[str, str]) -> str:
    """A path for a route (``<int:task_id>``) or regex (``(?P<app_label>a|b)``) pattern."""

    def converter(match: re.Match[str]) -> str:
        return samples[match.group(1)]

    def group(match: re.Match[str]) -> str:
        name, body = match.group(1), match.group(2)
        if name in samples:
            return samples[name]
        return body.split("|")[0]  # an alternation of names: the first

    path = re.sub(r"\(\?P<(\w+)>([^)]*)\)", group, route)
    path = re.sub(r"<(?:\w+:)?(\w+)>", converter, path)
    return "/" + path.replace("^", "").replace("$", "")


def endpoints(samples: dict[str, str]) -> list[tuple[str, ResolverMatch]]:
    found, seen = [], set()
    for route, _pattern in _walk(get_resolver().url_patterns):
        try:
            path = _concrete(route, samples)
        except KeyError as missing:
            pytest.fail(f"no sample value for URL parameter {missing} of {route!r}")
        match = resolve(path)  # raises Resolver404 when the sample values do not fit
        if path not in seen:  # a pattern shadowed by an earlier one (admin/login/) is skipped
            seen.add(path)
            found.append((path, match))
    # Logging out ends the sessions the other requests use: last.
    return sorted(found, key=lambda item: "logout" in item[0])


def drf_body_methods(match: ResolverMatch) -> list[str]:
    view = getattr(match.func, "cls", None)
    if view is None or not issubclass(view, APIView):
        return []
    return [m for m in BODY_METHODS if hasattr(view, m)]


def drf_views(samples: dict[str, str]) -> list[tuple[str, type[APIView]]]:
    """(path, view class) of every DRF view in the URLconf."""
    found = []
    for path, match in endpoints(samples):
        view = getattr(match.func, "cls", None)
        if view is not None and issubclass(view, APIView):
            found.append((path, view))
    return found
