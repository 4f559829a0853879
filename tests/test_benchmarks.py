"""The benchmark scripts run on any machine: no default points at one developer's disk."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def _defaults(path: Path) -> list[tuple[str, str]]:
    """(option, default) for every add_argument(..., default="...") with a string default."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            option = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else "?"
            for kw in node.keywords:
                if (
                    kw.arg == "default"
                    and isinstance(kw.value, ast.Constant)
                    and isinstance(kw.value.value, str)
                ):
                    found.append((str(option), kw.value.value))
    return found


def test_there_are_benchmark_scripts_to_check() -> None:
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_absolute_default_paths(script: Path) -> None:
    absolute = [(opt, value) for opt, value in _defaults(script) if value.startswith(("/", "~"))]
    assert not absolute, f"{script.name}: defaults that exist on one machine only: {absolute}"


@pytest.mark.parametrize("name", ["calib_int8.py", "stream_latency.py"])
def test_bundle_defaults_to_the_demo_bundle(name: str) -> None:
    assert ("--bundle", "simokit-demo/bundle") in _defaults(SCRIPTS[0].parent / name)
