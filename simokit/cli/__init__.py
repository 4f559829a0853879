"""The `simokit` command line: one entry point, one sub-command per step of the pipeline.

COMMANDS is the table of sub-commands. Each command module holds its HELP line,
`add_arguments(parser)` and `handle(args) -> int` side by side and imports its heavy dependencies
inside `handle`, so building the parser stays cheap; `groups` holds the options several share.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from simokit import __version__
from simokit.cli import (
    build,
    build_engine,
    calib,
    demo,
    eval,
    export_triton,
    import_,
    inspect,
    merge,
    profile,
    run,
    serve,
    train,
)
from simokit.errors import SimokitError

COMMANDS: dict[str, ModuleType] = {
    "demo": demo,
    "train": train,
    "merge": merge,
    "build": build,
    "profile": profile,
    "import": import_,
    "inspect": inspect,
    "eval": eval,
    "build-engine": build_engine,
    "calib": calib,
    "run": run,
    "export-triton": export_triton,
    "serve": serve,
}

# What `simokit[build]` brings; a command importing one of these without it gets one line, not a traceback.
BUILD_MODULES = ("torch", "safetensors", "onnx", "onnxslim", "matplotlib")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="simokit", description="Merge task experts into one deployable engine."
    )
    parser.add_argument("--version", action="version", version=f"simokit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP)
        module.add_arguments(p)
        p.set_defaults(func=module.handle, parser=p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, and turn user errors into one line and a non-zero exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Report unknown options with the sub-command's usage, which is the one the user needs.
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SimokitError as exc:
        print(f"simokit {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in BUILD_MODULES:
            raise
        # a robot install (pip install simokit) has the runtime only; say which extra brings the rest
        print(
            f"simokit {args.command}: error: needs {exc.name.split('.')[0]}, part of the build side; "
            "install it with: pip install 'simokit[build]' (bundle, run, profile BUNDLE and inspect do not)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"simokit {args.command}: interrupted", file=sys.stderr)
        return 130
