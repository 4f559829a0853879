"""`load()` reads the one backend table: names, 'auto', and each backend's opener imported by name."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from simokit.errors import ConfigError
from simokit.runtime import load
from simokit.runtime.capabilities import AUTO, BACKENDS, CHOICES


def test_choices_are_auto_and_the_table() -> None:
    assert (AUTO, *BACKENDS) == CHOICES
    with pytest.raises(ConfigError, match="choose from auto, onnxruntime, ort-tensorrt, tensorrt, torch"):
        load("anywhere", backend="tensorflow")


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_opener_names_a_function(name: str) -> None:
    module, _, function = BACKENDS[name].opener.partition(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_the_runtime_imports_no_opener_until_one_is_used() -> None:
    code = (
        "import sys\n"
        "import simokit.runtime, simokit.runtime.loading, simokit.runtime.capabilities\n"
        "late = ('simokit.export', 'simokit.runtime.backends.ort', 'simokit.runtime.trt.runner')\n"
        "print(sorted(m for m in sys.modules if m.startswith(late)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
