"""`simokit calib`: INT8 calibration of a bundle (Q/DQ graph, report, optional TensorRT cache)."""

from __future__ import annotations

import argparse
from pathlib import Path

from simokit.cli.groups import add_bundle, add_quiet, add_threads, from_args

HELP = "INT8 calibration: Q/DQ model.int8.onnx, report, TensorRT cache"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """calib's flags: the data, the range estimator, what stays float, the accuracy budget."""
    add_bundle(p)
    p.add_argument(
        "--data",
        required=True,
        help="calibration frames: image folder, video file, ROS 2 bag (.mcap, with --topic), "
        "NYUv2-layout folder or 'scenes[:split]'",
    )
    p.add_argument("--topic", help="ROS 2 bag: the image topic to read (default: the bag's only one)")
    p.add_argument(
        "--method",
        choices=["minmax", "entropy", "percentile"],
        default="percentile",
        help="activation range estimator (default: percentile, 99.999%%)",
    )
    p.add_argument("--n", type=int, default=256, help="calibration images, a fixed subset (default: 256)")
    p.add_argument(
        "--every", type=int, default=10, help="video or bag: use every k-th frame (default: %(default)s)"
    )
    p.add_argument(
        "--exclude",
        nargs="+",
        default=[],
        metavar="NAME",
        help="keep in float: blocks (blocks.3, patch_embed), op types (Conv) or node-name globs",
    )
    p.add_argument("--quantize-heads", action="store_true", help="also quantise each head's output layer")
    p.add_argument("--sensitivity", action="store_true", help="sweep blocks and exclude those over budget")
    p.add_argument("--budget", type=float, default=2.0, help="max drop of any task in points (default: 2)")
    p.add_argument("--mean-budget", type=float, default=1.0, help="max mean drop in points (default: 1)")
    p.add_argument(
        "--eval", default="scenes:test", help="labelled data: 'scenes[:split]', NYUv2 folder or 'none'"
    )
    add_threads(p)
    p.add_argument("--trt-cache", action="store_true", help="also write calib.cache (needs TensorRT)")
    add_quiet(p)


def handle(args: argparse.Namespace) -> int:
    """Calibrate a bundle to INT8 (Q/DQ ONNX, optional TensorRT cache) and print the report."""
    from simokit.calib.workflow import CalibOptions, calibrate_bundle
    from simokit.runtime.bundle import require_graph

    opts = from_args(
        CalibOptions,
        args,
        exclude=tuple(args.exclude),
        keep_heads=not args.quantize_heads,
        progress=not args.quiet,
    )
    require_graph(args.bundle, "calib")
    result = calibrate_bundle(Path(args.bundle), opts)
    print(result.report)
    print("wrote: " + ", ".join(str(p) for p in result.files))
    return 0
