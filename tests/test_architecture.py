"""The package's shape, checked from the source: layers import only downwards, no import cycles,
modules and functions stay small, and the robot side never imports torch.

Imports are read with `ast` from every module, including imports inside functions, so a lazy
import counts like any other: it would fail the same way on a robot.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "simokit"

# Lowest first. A package may import from its own layer's packages and from lower layers only.
# docs/architecture.md explains each layer; keep both in step.
LAYERS: list[set[str]] = [
    {"simokit", "errors", "config", "cache", "device", "recipe", "own_recipe"},
    {"data"},
    {"tasks"},
    {"runtime"},
    {"models"},
    {"train", "merge"},
    {"realign"},
    {"export"},
    {"calib"},
    {"routing", "profile"},
    {"pipeline"},
    {"cli"},
]
# Robot side: importable on a Jetson that has no torch, onnx or safetensors (modules by prefix).
ROBOT_SIDE = ("simokit.runtime", "simokit.tasks.spec", "simokit.tasks.metrics", "simokit.tasks.score")
BUILD_ONLY = ("torch", "onnx", "safetensors", "onnxslim", "matplotlib")
# The TensorRT engine is built on the robot itself, and the `trt` extra brings onnx for its layer plan.
ALLOWED_ON_ROBOT = {"onnx": ("simokit.runtime.trt",)}
MAX_MODULE_LINES = 260
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """Every imported name (absolute), at any depth of the module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{a.name}" for a in node.names)
    return names


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for name in _imports(module, path):
            target = _resolve(name) if name.startswith("simokit") else None
            if target and target != module:
                graph[module].add(target)
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _layer(package: str) -> int:
    for i, layer in enumerate(LAYERS):
        if package in layer:
            return i
    raise AssertionError(f"package simokit.{package} is in no layer: add it to LAYERS and the docs")


def test_every_package_has_a_layer() -> None:
    """A new package must be placed in the layer order before it can land."""
    for module in MODULES:
        _layer(_package(module))


def test_imports_only_go_down_the_layers() -> None:
    """merge/, export/, calib/ never import the pipeline; nothing imports the CLI; and so on."""
    upward = [
        f"{a} -> {b}"
        for a, targets in _graph().items()
        for b in targets
        if _layer(_package(b)) > _layer(_package(a))
    ]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over module imports: every component is one module."""
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("package", ROBOT_SIDE)
def test_robot_side_never_imports_build_packages(package: str) -> None:
    """Not even lazily: a robot install has none of them."""
    bad = []
    for module, path in MODULES.items():
        if not (module == package or module.startswith(package + ".")):
            continue
        for name in _imports(module, path):
            top = name.split(".")[0]
            if top in BUILD_ONLY and not module.startswith(ALLOWED_ON_ROBOT.get(top, ("-",))):
                bad.append(f"{module} imports {name}")
    assert not bad, "\n".join(bad)


def test_modules_and_functions_stay_small() -> None:
    """One concept per module: no module over ~250 lines, no function over ~60."""
    big = []
    for module, path in MODULES.items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            big.append(f"{module}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    big.append(f"{module}.{node.name}: {length} lines")
    assert not big, "too large:\n" + "\n".join(sorted(big))
