"""The house reads one way: research -> training -> labeling, and training.ml -> none of them
(nor Django). The web process (settings, URLs, admin) never imports torch."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions (relative imports
    resolved against the file's package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def forbidden_imports(package: str, forbidden: tuple[str, ...]) -> list[str]:
    """``file: module`` for each import of a ``forbidden`` package under ``package``."""
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in sorted(imported_modules(path)):
            if any(module == name or module.startswith(f"{name}.") for name in forbidden):
                bad.append(f"{path.relative_to(ROOT)}: {module}")
    return bad


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("labeling", ("training", "research")),
        ("training", ("research",)),
        ("training/ml", ("labeling", "research", "django", "rest_framework", "celery", "config")),
    ],
)
def test_dependencies_run_one_way(package, forbidden):
    assert forbidden_imports(package, forbidden) == []


def test_training_ml_imports_nothing_of_training_outside_it():
    bad = [
        line
        for line in forbidden_imports("training/ml", ("training",))
        if not line.split(": ")[1].startswith("training.ml")
    ]
    assert bad == []


def test_the_checker_finds_a_function_level_import(tmp_path, monkeypatch):
    module = tmp_path / "pkg" / "mod.py"
    module.parent.mkdir()
    module.write_text(
        textwrap.dedent(
            """
            import json

            def late():
                from training.models import PolicyVersion
                from . import sibling
                return PolicyVersion
            """
        )
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert "pkg/mod.py: training.models" in forbidden_imports("pkg", ("training",))
    assert forbidden_imports("pkg", ("research",)) == []
    assert "pkg.sibling" in imported_modules(module)


FRESH_WEB_PROCESS = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
import django
django.setup()
from django.contrib import admin
from django.urls import get_resolver
import config.urls
get_resolver().url_patterns
for model, model_admin in admin.site._registry.items():
    model_admin.get_urls()
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("torch modules:", loaded)
sys.exit(1 if loaded else 0)
"""


def test_the_web_process_loads_without_torch():
    result = subprocess.run(
        [sys.executable, "-c", FRESH_WEB_PROCESS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
