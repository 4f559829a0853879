"""The simokit node: camera images in; segmentation, depth and normals out, stamped with their input's header.

A thin rclpy shell. Conversions, stamping, camera_info scaling and the newest-frame-only hand-over are
simokit.runtime.ros, tested in simokit's CI through real CDR serialisation; this file only moves
messages between rclpy and that core. It has not been run in simokit's CI, which has no ROS 2.

Subscribes: `image` (sensor_msgs/Image, or CompressedImage on `image/compressed` with compressed:=true)
and `camera_info`, best effort, depth 1. Publishes (reliable): ~/<task>/labels (mono8 class ids),
~/<task>/color (rgb8), ~/depth (32FC1 metres), ~/normal (32FC3 unit vectors), ~/camera_info (scaled to
the outputs), ~/seg/label_map (latched JSON), and /diagnostics (latency p50/p99, dropped frames).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header, String

from simokit.runtime import load
from simokit.runtime.ros.convert import to_bgr
from simokit.runtime.ros.header import CameraInfo as Calibration
from simokit.runtime.ros.header import FrameHeader
from simokit.runtime.ros.msgdefs import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, STRING
from simokit.runtime.ros.outputs import (
    NewestSlot,
    label_map_message,
    output_messages,
    output_topics,
    palette_array,
)
from simokit.runtime.stats import StreamStats

SENSOR_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
ROS_TYPES = {IMAGE: Image, CAMERA_INFO: CameraInfo, STRING: String}


def to_ros(datatype: str, fields: dict[str, Any]) -> Any:
    """A message dict from simokit.runtime.ros as the rclpy message of `datatype`."""
    if datatype == STRING:
        return String(data=fields["data"])
    head = fields["header"]
    values = {k: v for k, v in fields.items() if k not in ("header", "roi")}
    msg = ROS_TYPES[datatype](header=Header(frame_id=head["frame_id"], stamp=Time(**head["stamp"])), **values)
    if datatype == CAMERA_INFO:
        msg.roi = RegionOfInterest(**fields["roi"])
    return msg


class SimokitNode(Node):
    """Subscribes to a camera, runs the bundle on the newest frame on a worker thread, publishes outputs."""

    def __init__(self) -> None:
        super().__init__("simokit")
        param = self.declare_parameter
        bundle, backend = param("bundle", "bundle").value, param("backend", "auto").value
        precision = param("precision", "").value or None
        self.engine = load(bundle, backend=backend, precision=precision)
        wanted = list(param("outputs", ["seg", "depth", "normal"]).value)
        self.tasks = tuple(t for t in self.engine.meta.tasks if t in wanted)
        width, height = param("output_width", 0).value, param("output_height", 0).value
        self.size = (width, height) if width and height else None
        self.every = max(1, param("process_every", 1).value)
        self.palette = palette_array(self.engine.meta.palette)
        self.pubs = {
            t: self.create_publisher(ROS_TYPES[d], f"~/{t}", OUTPUT_QOS) for t, d in output_topics(self.tasks)
        }
        topic, kind, fields = label_map_message(self.engine.meta.classes, self.palette)
        self.create_publisher(String, f"~/{topic}", LATCHED_QOS).publish(to_ros(kind, fields))
        compressed = param("compressed", False).value
        image_type, image_topic = (CompressedImage, "image/compressed") if compressed else (Image, "image")
        self.datatype = COMPRESSED_IMAGE if compressed else IMAGE
        self.create_subscription(image_type, image_topic, self._on_image, SENSOR_QOS)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, SENSOR_QOS)
        self.calibration: Calibration | None = None
        self.slot, self.stats, self.received = NewestSlot(), StreamStats(), 0
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 1)
        self.create_timer(param("diagnostics_period", 1.0).value, self._report)
        self._stop = threading.Event()
        self.worker = threading.Thread(target=self._work, name="simokit-infer", daemon=True)
        self.worker.start()
        self.get_logger().info(f"{self.engine.describe()}; publishing {', '.join(self.pubs)}")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.calibration = Calibration.from_msg(msg)

    def _on_image(self, msg: Any) -> None:
        """Hand the frame to the worker; a frame it has not taken yet is replaced (and counted dropped)."""
        self.received += 1
        self.stats.captured += 1
        if (self.received - 1) % self.every == 0:
            self.stats.dropped += self.slot.put((time.perf_counter(), msg, self.calibration))

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self.slot.get(timeout=0.1)
            if item is None:
                continue
            received, msg, calibration = item
            try:
                outputs = self.engine.infer(to_bgr(self.datatype, msg))
            except Exception as exc:  # a bad frame must not stop the node; say why, at most every 5 s
                self.get_logger().error(f"frame skipped: {exc}", throttle_duration_sec=5.0)
                continue
            header = FrameHeader.from_msg(msg.header, camera_info=calibration)
            for topic, kind, fields in output_messages(outputs, header, self.palette, self.size, self.tasks):
                self.pubs[topic].publish(to_ros(kind, fields))
            self.stats.inferred += 1
            self.stats.delivered += 1
            self.stats.latencies.append(time.perf_counter() - received)

    def _report(self) -> None:
        """One DiagnosticStatus: latency percentiles (receive to publish), rates and dropped frames."""
        values = {
            "latency p50 ms": f"{self.stats.latency_ms(50, last=100):.1f}",
            "latency p99 ms": f"{self.stats.latency_ms(99, last=100):.1f}",
            "frames published": str(self.stats.delivered),
            "frames dropped": str(self.stats.dropped),
            "inference fps": f"{self.stats.infer_fps():.1f}",
        }
        status = DiagnosticStatus(name=f"{self.get_name()}: inference", hardware_id=self.engine.describe())
        status.level, status.message = DiagnosticStatus.OK, "running" if self.stats.delivered else "waiting"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        self.diagnostics.publish(
            DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status])
        )

    def destroy_node(self) -> None:
        """Stop the worker before the node goes away."""
        self._stop.set()
        self.worker.join(timeout=5.0)
        self.get_logger().info(self.stats.summary())
        super().destroy_node()


def main() -> None:
    """Spin the node until Ctrl-C."""
    rclpy.init()
    node = SimokitNode()
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
