"""A ROS 2 node that publishes simokit's segmentation, depth and normals for every camera frame.

SAMPLE ONLY: rclpy cannot be installed in simokit's build environment, so this file has never been
run against ROS 2 here. The simokit API it uses (Stream with a callback sink, run() on a worker
thread, stop() from another thread, Frame.timestamp) is covered by tests/runtime/test_stream.py.

    source /opt/ros/humble/setup.bash
    python samples/ros2_publisher.py --ros-args -p bundle:=/path/to/bundle -p source:=/dev/video0

Topics (sensor_msgs/Image, header.frame_id = the `frame_id` parameter, stamped at capture time):
    ~/seg     mono8   class ids (names and colours are in the bundle's meta.json)
    ~/depth   32FC1   metres
    ~/normals 32FC3   unit normals in the camera frame (x right, y down, z forward)
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from simokit.runtime import Frame, Reconnect, Stream, load


def to_image(array: np.ndarray, encoding: str, header: Header) -> Image:
    """A (H, W) or (H, W, C) C-contiguous array as a sensor_msgs/Image (no cv_bridge needed)."""
    array = np.ascontiguousarray(array)
    msg = Image()
    msg.header = header
    msg.height, msg.width = array.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = array.strides[0]
    msg.data = array.tobytes()
    return msg


class SimokitNode(Node):
    """Runs the camera stream on its own thread; publishes from the stream's callback."""

    def __init__(self) -> None:
        super().__init__("simokit")
        bundle = self.declare_parameter("bundle", "bundle").value
        source = self.declare_parameter("source", "0").value
        self.frame_id = self.declare_parameter("frame_id", "camera_optical_frame").value
        self.pubs = {
            name: self.create_publisher(Image, f"~/{name}", 2) for name in ("seg", "depth", "normals")
        }
        engine = load(bundle)
        # Robots lose cameras and networks: keep re-opening forever, backing off to 8 s between tries.
        self.stream = Stream(engine, source, [self.publish], reconnect=Reconnect(attempts=-1))
        self.worker = threading.Thread(target=self.stream.run, kwargs={"handle_signals": False}, daemon=True)
        self.worker.start()
        self.get_logger().info(f"{engine.describe()} on {source}")

    def publish(self, frame: Frame, outputs: dict[str, np.ndarray]) -> None:
        """Stamp with the capture time (not now) so consumers can match results to other sensors."""
        age_ns = int((time.perf_counter() - frame.timestamp) * 1e9)
        header = Header(frame_id=self.frame_id)
        header.stamp = (self.get_clock().now() - Duration(nanoseconds=age_ns)).to_msg()
        seg = outputs["seg"]
        labels = (seg.argmax(0) if seg.ndim == 3 else seg).astype(np.uint8)
        self.pubs["seg"].publish(to_image(labels, "mono8", header))
        self.pubs["depth"].publish(to_image(outputs["depth"][0].astype(np.float32), "32FC1", header))
        normals = np.moveaxis(outputs["normal"], 0, -1).astype(np.float32)
        self.pubs["normals"].publish(to_image(normals, "32FC3", header))

    def destroy_node(self) -> None:
        """Stop the stream (all its threads) before the node goes away."""
        self.stream.stop()
        self.worker.join(timeout=5.0)
        self.get_logger().info(self.stream.stats.summary())
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
