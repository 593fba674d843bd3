"""Serve plotly.js from the installed ``plotly`` package as a static file (no copy, no CDN).

Listed in STATICFILES_FINDERS: runserver, the test live server and WhiteNoise (with
WHITENOISE_USE_FINDERS) find it directly, and ``collectstatic`` copies it into STATIC_ROOT.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.contrib.staticfiles.utils import matches_patterns
from django.core.files.storage import FileSystemStorage, Storage

PREFIX = "dashboard/vendor"
FILES = ("plotly.min.js",)
PLOTLY_STATIC_PATH = f"{PREFIX}/plotly.min.js"


def _package_data() -> Path:
    return Path(plotly.__file__).resolve().parent / "package_data"


class PlotlyFinder(BaseFinder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=str(_package_data()))
        self.storage.prefix = PREFIX  # type: ignore[attr-defined]

    def check(self, **kwargs: Any) -> list:
        from django.core.checks import Error

        missing = [name for name in FILES if not (_package_data() / name).is_file()]
        if missing:
            return [Error(f"plotly package data lacks {missing}", id="dashboard.E001")]
        return []

    def find(  # type: ignore[override]
        self, path: str, find_all: bool = False, **kwargs: Any
    ) -> str | list[str]:
        find_all = find_all or kwargs.get("all", False)
        for name in FILES:
            if path == f"{PREFIX}/{name}":
                match = str(_package_data() / name)
                return [match] if find_all else match
        return []  # what Django's own finders return for "not found"

    def list(self, ignore_patterns: Iterable[str] | None) -> Iterator[tuple[str, Storage]]:
        for name in FILES:
            if not matches_patterns(name, list(ignore_patterns or [])):
                yield name, self.storage
