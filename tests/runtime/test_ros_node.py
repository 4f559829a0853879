"""The node's own code paths, run against stand-ins for rclpy and the message packages (no ROS here).

The stand-ins only record what the node does (parameters, publishers, subscriptions, timers) and build
messages as plain attribute objects; they check the shell's wiring, not ROS behaviour (QoS matching,
executors), which only a ROS 2 install can show.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from simokit.runtime import load
from simokit.runtime.ros.convert import image_array, image_msg
from simokit.runtime.ros.header import CameraInfo, FrameHeader
from simokit.runtime.ros.outputs import palette_array

PACKAGE = Path(__file__).resolve().parents[2] / "ros2" / "simokit_ros"


class Msg:
    """Any ROS message: keyword fields become attributes."""

    OK = 0

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class FakeNode:
    """What SimokitNode uses of rclpy.node.Node, recording it."""

    overrides: ClassVar[dict[str, Any]] = {}

    def __init__(self, name: str) -> None:
        self.name, self.published, self.subscriptions, self.timers, self.logged = name, {}, {}, [], []

    def declare_parameter(self, name: str, default: Any) -> Any:
        return types.SimpleNamespace(value=self.overrides.get(name, default))

    def create_publisher(self, _type: Any, topic: str, _qos: Any) -> Any:
        sent = self.published.setdefault(topic, [])
        return types.SimpleNamespace(publish=sent.append)

    def create_subscription(self, _type: Any, topic: str, callback: Any, _qos: Any) -> None:
        self.subscriptions[topic] = callback

    def create_timer(self, period: float, callback: Any) -> None:
        self.timers.append(callback)

    def get_logger(self) -> Any:
        log = lambda text, **_: self.logged.append(text)  # noqa: E731
        return types.SimpleNamespace(info=log, error=log)

    def get_name(self) -> str:
        return self.name

    def get_clock(self) -> Any:
        return types.SimpleNamespace(now=lambda: types.SimpleNamespace(to_msg=lambda: Msg(sec=0, nanosec=0)))

    def destroy_node(self) -> None:
        pass


def _fake_ros(monkeypatch: pytest.MonkeyPatch) -> None:
    enum = types.SimpleNamespace(KEEP_LAST=1, BEST_EFFORT=2, RELIABLE=1, TRANSIENT_LOCAL=1)
    modules = {
        "rclpy": {},
        "rclpy.node": {"Node": FakeNode},
        "rclpy.qos": {
            "QoSProfile": Msg, "HistoryPolicy": enum, "ReliabilityPolicy": enum, "DurabilityPolicy": enum,
        },
        "builtin_interfaces.msg": {"Time": Msg},
        "std_msgs.msg": {"Header": Msg, "String": Msg},
        "sensor_msgs.msg": {n: Msg for n in ("CameraInfo", "CompressedImage", "Image", "RegionOfInterest")},
        "diagnostic_msgs.msg": {n: Msg for n in ("DiagnosticArray", "DiagnosticStatus", "KeyValue")},
    }  # fmt: skip
    for name, attrs in modules.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))
    monkeypatch.syspath_prepend(str(PACKAGE))


def _as_msg(fields: dict[str, Any]) -> Msg:
    return Msg(**{k: _as_msg(v) if isinstance(v, dict) else v for k, v in fields.items()})


def test_node_publishes_stamped_outputs_and_diagnostics(
    monkeypatch: pytest.MonkeyPatch, stream_bundle: Path, scene_frames: np.ndarray
) -> None:
    _fake_ros(monkeypatch)
    from simokit_ros.node import SimokitNode

    monkeypatch.setattr(FakeNode, "overrides", {"bundle": str(stream_bundle), "outputs": ["seg", "depth"]})
    node = SimokitNode()
    try:
        assert set(node.subscriptions) == {"image", "camera_info"}
        label_map = node.published["~/seg/label_map"]
        assert len(label_map) == 1 and '"classes"' in label_map[0].data
        header = FrameHeader(12, 34, "cam_optical")
        info = CameraInfo(64, 48, k=(50.0, 0, 32, 0, 50.0, 24, 0, 0, 1))
        node.subscriptions["camera_info"](_as_msg(info.to_msg(header.to_msg())))
        frame = scene_frames[0]
        node.subscriptions["image"](_as_msg(image_msg(frame, "bgr8", header.to_msg())))
        deadline = time.monotonic() + 30
        while not node.published["~/camera_info"] and time.monotonic() < deadline:
            time.sleep(0.01)
        outputs = load(stream_bundle).infer(frame)
        labels, color = node.published["~/seg/labels"][0], node.published["~/seg/color"][0]
        np.testing.assert_array_equal(image_array(labels), outputs["seg"].argmax(0))
        palette = palette_array(load(stream_bundle).meta.palette)
        np.testing.assert_array_equal(image_array(color), palette[outputs["seg"].argmax(0)])
        np.testing.assert_array_equal(image_array(node.published["~/depth"][0]), outputs["depth"][0])
        assert "~/normal" not in node.published  # not asked for: no publisher either
        for topic in ("~/seg/labels", "~/depth", "~/camera_info"):
            got = node.published[topic][0].header
            assert (got.stamp.sec, got.stamp.nanosec, got.frame_id) == (12, 34, "cam_optical")
        assert CameraInfo.from_msg(node.published["~/camera_info"][0]) == info
        node.timers[0]()
        (report,) = node.published["/diagnostics"]
        values = {kv.key: kv.value for kv in report.status[0].values}
        assert values["frames published"] == "1" and values["frames dropped"] == "0"
    finally:
        node.destroy_node()
        for name in ("simokit_ros.node", "simokit_ros"):  # bound to the stand-ins: never reuse
            sys.modules.pop(name, None)
