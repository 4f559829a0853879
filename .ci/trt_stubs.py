"""Copy the installed tensorrt-stubs into a directory mypy can use, repairing their syntax errors.

tensorrt-stubs 10.13 installs `tensorrt/__init__.pyi` without a py.typed marker (mypy skips it as
untyped) and its generated `tensorrt_bindings/tensorrt.pyi` has five lines Python cannot parse: a
parameter named `in` (a keyword) and a required parameter after defaulted ones. This copies both
packages to OUT_DIR, renames `in` to `in_`, gives the trailing parameter a default, checks that
every file now parses, and prints OUT_DIR for MYPYPATH. The API text itself is not changed.

usage: python .ci/trt_stubs.py OUT_DIR
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import sys
from pathlib import Path

PACKAGES = ("tensorrt", "tensorrt_bindings")
KEYWORD_PARAM = re.compile(r"([(,]\s*)in(\s*:)")
REQUIRED_AFTER_DEFAULT = re.compile(r"(, channel_axis: int)(\))")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"trt_stubs: package '{name}' not found; pip install --no-deps tensorrt-stubs")
    return Path(next(iter(spec.submodule_search_locations)))


def _repair(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("def "):
            line = KEYWORD_PARAM.sub(r"\1in_\2", line)
            line = REQUIRED_AFTER_DEFAULT.sub(r"\1 = ...\2", line)
        lines.append(line)
    return "".join(lines)


def main(out: Path) -> None:
    """Write repaired copies of the stub packages under `out` and check that they parse."""
    for name in PACKAGES:
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for stub in sorted(_package_dir(name).glob("*.pyi")):
            fixed = _repair(stub.read_text())
            try:
                ast.parse(fixed, filename=str(stub))
            except SyntaxError as exc:
                sys.exit(f"trt_stubs: {stub}:{exc.lineno}: not valid Python ({exc.msg}); extend _repair")
            (target / stub.name).write_text(fixed)
    print(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
