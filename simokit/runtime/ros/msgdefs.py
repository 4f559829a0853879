"""The standard ROS 2 message definitions simokit writes into bags, in rosbag2's `ros2msg` schema form.

Each schema is the type's own definition followed by every type it uses, each after a line of 80 `=`
and `MSG: package/Type`, as `ros2 bag record` writes them, so `ros2 bag info`, `ros2 bag play` and
Foxglove decode the bag without simokit.
"""

from __future__ import annotations

SEPARATOR = "=" * 80

_DEFS = {
    "builtin_interfaces/Time": "int32 sec\nuint32 nanosec\n",
    "std_msgs/Header": "builtin_interfaces/Time stamp\nstring frame_id\n",
    "std_msgs/String": "string data\n",
    "sensor_msgs/Image": (
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
        "uint32 step\nuint8[] data\n"
    ),
    "sensor_msgs/CompressedImage": "std_msgs/Header header\nstring format\nuint8[] data\n",
    "sensor_msgs/RegionOfInterest": (
        "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify\n"
    ),
    "sensor_msgs/CameraInfo": (
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\nfloat64[] d\n"
        "float64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\nuint32 binning_y\n"
        "RegionOfInterest roi\n"
    ),
}
_USES = {
    "std_msgs/Header": ("builtin_interfaces/Time",),
    "sensor_msgs/Image": ("std_msgs/Header", "builtin_interfaces/Time"),
    "sensor_msgs/CompressedImage": ("std_msgs/Header", "builtin_interfaces/Time"),
    "sensor_msgs/CameraInfo": ("std_msgs/Header", "builtin_interfaces/Time", "sensor_msgs/RegionOfInterest"),
}

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
STRING = "std_msgs/msg/String"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)


def schema_text(datatype: str) -> str:
    """The schema of `datatype` ("sensor_msgs/msg/Image" or "sensor_msgs/Image") with its dependencies."""
    name = datatype.replace("/msg/", "/")
    parts = [_DEFS[name]] + [f"{SEPARATOR}\nMSG: {dep}\n{_DEFS[dep]}" for dep in _USES.get(name, ())]
    return "".join(parts)
