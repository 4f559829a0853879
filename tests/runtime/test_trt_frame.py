"""TensorRT profiles for frame-IO bundles: frame sizes, their defaults, refusals and output shapes (no GPU).

The frame-IO engine build and run have not been executed on TensorRT; these check simokit's side.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simokit.errors import ConfigError, ShapeError
from simokit.runtime.trt.options import BuildOptions
from simokit.runtime.trt.profiles import (
    Profile,
    Range,
    frame_ranges,
    output_shape,
    parse_frame_size,
    profile_for,
    refusal,
)
from simokit.runtime.trt.sidecar import EngineInfo

FRAME_INPUT = ["batch", "height", "width", 3]  # the frame-IO graph's input as ONNX names it


def test_frame_sizes_parse_as_height_x_width() -> None:
    assert parse_frame_size("720x1280", "frame-opt") == (720, 1280)
    assert parse_frame_size("64X96", "frame-min") == (64, 96)
    for bad in ("720", "720x", "0x64", "-1x64", "ax3", "1x2x3"):
        with pytest.raises(ConfigError, match=f"--frame-max '{bad}' must be HEIGHTxWIDTH"):
            parse_frame_size(bad, "frame-max")


def test_frame_ranges_default_and_move_inside_the_given_sizes() -> None:
    assert frame_ranges() == (Range(64, 720, 2160), Range(64, 1280, 3840))
    # a small max alone pulls the default opt down to it; a large opt alone pushes the max up
    assert frame_ranges(hi=(480, 640)) == (Range(64, 480, 480), Range(64, 640, 640))
    assert frame_ranges(opt=(3000, 4000)) == (Range(64, 3000, 3000), Range(64, 4000, 4000))
    assert frame_ranges(lo=(800, 100)) == (Range(800, 800, 2160), Range(100, 1280, 3840))
    assert frame_ranges(lo=(30, 40), opt=(30, 40), hi=(30, 40)) == (Range(30, 30, 30), Range(40, 40, 40))
    with pytest.raises(ConfigError, match=r"min 64x64, opt 720x1280, max 480x2000 must grow"):
        frame_ranges(opt=(720, 1280), hi=(480, 2000))


def test_frame_profile_spans_any_frame_size_not_multiples_of_14() -> None:
    height, width = frame_ranges(lo=(61, 77), opt=(481, 641), hi=(1081, 1921))
    prof = profile_for("image", FRAME_INPUT, "uint8", Range(1, 2, 4), height, width, multiple=1)
    assert prof.shapes() == ((1, 61, 77, 3), (2, 481, 641, 3), (4, 1081, 1921, 3))
    default = profile_for("image", FRAME_INPUT, "uint8", None, *frame_ranges(), multiple=1)
    assert default.to_dict() == {
        "input": "image",
        "min": [1, 64, 64, 3],
        "opt": [1, 720, 1280, 3],
        "max": [8, 2160, 3840, 3],
    }


def test_build_options_take_frame_sizes_only_for_frame_graphs() -> None:
    assert BuildOptions().check_io(frame=False) is None
    assert BuildOptions(frame_max=(480, 640)).check_io(frame=True) == frame_ranges(hi=(480, 640))
    with pytest.raises(ConfigError, match="--frame-min/--frame-opt/--frame-max size camera frames"):
        BuildOptions(frame_opt=(480, 640)).check_io(frame=False)
    with pytest.raises(ConfigError, match="instead of --height/--width"):
        BuildOptions(height=Range(224, 224, 448)).check_io(frame=True)
    with pytest.raises(ConfigError, match="must grow"):
        BuildOptions(frame_min=(500, 500), frame_max=(400, 400)).check_io(frame=True)


def test_refusals_name_the_axis_and_the_rebuild_flag() -> None:
    prof = Profile("image", (1, 64, 64, 3), (1, 720, 1280, 3), (4, 1080, 1920, 3))
    assert refusal(prof, (2, 64, 1920, 3), frame=True) is None
    too_big = refusal(prof, (1, 1200, 1600, 3), frame=True)
    assert too_big == (
        "frame 1200x1600 is outside the engine's frame range 64x64..1080x1920; "
        "rebuild the engine with --frame-max 1200x1920"
    )
    assert refusal(prof, (1, 48, 640, 3), frame=True) == (
        "frame 48x640 is outside the engine's frame range 64x64..1080x1920; "
        "rebuild the engine with --frame-min 48x64"
    )
    batch = refusal(prof, (5, 720, 1280, 3), frame=True)
    assert batch is not None and batch.startswith("a batch of 5 frames") and "--batch 1,5,8" in batch
    model = refusal(
        Profile("image", (1, 224, 224, 3), (1, 224, 224, 3), (8, 224, 224, 3)), (1, 56, 56, 3), False
    )
    assert model is not None and "[1, 56, 56, 3] is outside the engine's profile" in model


def test_output_shapes_follow_the_input() -> None:
    frame = (2, 480, 640, 3)
    assert output_shape(["B", "H", "W"], frame, "uint8") == (2, 480, 640)
    assert output_shape(["B", 3, "H", "W"], frame, "uint8") == (2, 3, 480, 640)
    assert output_shape(["B", 11, 56, 56], frame, "uint8") == (2, 11, 56, 56)  # logits stay at model size
    assert output_shape(["B", 1, "H", "W"], (1, 3, 224, 336), "float") == (1, 1, 224, 336)
    with pytest.raises(ShapeError, match="other than B, H, W"):
        output_shape(["N", "H", "W"], frame, "uint8")


def test_rebuild_hint_keeps_a_frame_engines_sizes() -> None:
    prof = {"input": "image", "min": [1, 64, 64, 3], "opt": [1, 480, 640, 3], "max": [8, 1080, 1920, 3]}
    info = EngineInfo(
        "10.3", "Orin", "8.7", "fp16", [prof], "model.onnx", "a", "b", extra={"options": {"io": "frame"}}
    )
    assert info.rebuild_hint(Path("b")) == (
        "simokit build-engine b --fp16 --frame-min 64x64 --frame-opt 480x640 --frame-max 1080x1920"
    )
    model = EngineInfo("10.3", "Orin", "8.7", "fp16", [prof], "model.onnx", "a", "b", extra={"options": {}})
    assert model.rebuild_hint(Path("b")) == "simokit build-engine b --fp16"


def test_fp16_plans_keep_every_frame_node_fp32_including_the_resize_branches(tmp_path: Path) -> None:
    """Running sums of pixel values are exact to 2**24 in FP32 and to 2048 in FP16."""
    import numpy as np
    import onnx
    from tiny_models import tiny_model

    from simokit.export.bundle import write_bundle
    from simokit.export.onnx import ExportSpec
    from simokit.runtime.trt.precision import all_node_names, frame_plan, plan_fp32

    frames = np.random.default_rng(0).integers(0, 256, (2, 56, 56, 3), np.uint8)
    graphs = {}
    for io in ("frame", "model"):
        spec = ExportSpec(("seg", "depth", "normal"), 56, 56, input_kind="uint8", io=io)
        graphs[io] = onnx.load(
            str(write_bundle(tmp_path / io, tiny_model(seed=1), spec, frames) / "model.onnx")
        )
    frame_names = {n for n in all_node_names(graphs["frame"]) if n.startswith("frame/")}
    assert any("/box/CumSum" in n for n in frame_names)  # inside the If: not a top-level node
    assert not any("/box/" in n.name for n in graphs["frame"].graph.node)
    pinned = frame_plan(graphs["frame"])
    assert (
        pinned is not None
        and pinned.nodes == frame_names
        and pinned.summary()["frame_nodes"] == len(frame_names)
    )
    full = plan_fp32(graphs["frame"])
    assert frame_names <= full.nodes and full.layernorms > 0
    assert frame_plan(graphs["model"]) is None and plan_fp32(graphs["model"]).frame_nodes == 0
