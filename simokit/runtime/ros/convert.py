"""sensor_msgs/Image and CompressedImage <-> numpy arrays, for every encoding a robot camera commonly sends.

Incoming frames become (H, W, 3) uint8 BGR, what Engine.infer takes: rgb8, bgr8, rgba8, bgra8, mono8,
mono16 (top 8 bits), yuv422 (UYVY), yuv422_yuy2 (YUYV), and CompressedImage in JPEG or PNG. Rows may
be padded (`step`) and 16-bit data big-endian. Outgoing arrays become Image dicts with the host's
byte order. OpenCV is needed only for YUV and compressed frames.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from simokit.runtime.ros.header import field
from simokit.runtime.source_base import StreamError, require_cv2

# encoding -> (dtype, channels) of the buffer as sent
LAYOUTS: dict[str, tuple[type, int]] = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "8UC3": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "16UC1": (np.uint16, 1),
    "yuv422": (np.uint8, 2),
    "uyvy": (np.uint8, 2),
    "yuv422_yuy2": (np.uint8, 2),
    "yuyv": (np.uint8, 2),
    "32FC1": (np.float32, 1),
    "32FC3": (np.float32, 3),
}
# YUV 4:2:2 byte orders and the OpenCV conversion that reads each
_YUV = {"yuv422": "COLOR_YUV2BGR_UYVY", "uyvy": "COLOR_YUV2BGR_UYVY"}
_YUV |= {"yuv422_yuy2": "COLOR_YUV2BGR_YUY2", "yuyv": "COLOR_YUV2BGR_YUY2"}
COLOUR_ENCODINGS = tuple(e for e in LAYOUTS if not e.startswith("32F"))


def image_array(msg: Any) -> np.ndarray:
    """The pixels of a sensor_msgs/Image as (H, W) or (H, W, C), in the dtype its encoding names."""
    encoding = str(field(msg, "encoding"))
    if encoding not in LAYOUTS:
        raise StreamError(f"image encoding '{encoding}' is not supported; use one of {', '.join(LAYOUTS)}")
    dtype, channels = LAYOUTS[encoding]
    height, width, step = int(field(msg, "height")), int(field(msg, "width")), int(field(msg, "step"))
    item = np.dtype(dtype).newbyteorder(">" if field(msg, "is_bigendian") else "<")
    row = width * channels * item.itemsize
    data = np.frombuffer(bytes(field(msg, "data")), np.uint8)
    if step < row or data.size < step * height:
        raise StreamError(
            f"{encoding} image {width}x{height}: {data.size} bytes with step {step}, "
            f"expected at least {row} per row"
        )
    rows = data[: step * height].reshape(height, step)[:, :row]
    pixels = np.ascontiguousarray(rows).view(item).reshape((height, width, channels))
    pixels = pixels.astype(item.newbyteorder("="), copy=False)
    return pixels[..., 0] if channels == 1 else pixels


def image_to_bgr(msg: Any) -> np.ndarray:
    """A sensor_msgs/Image as the (H, W, 3) uint8 BGR frame Engine.infer takes."""
    encoding = str(field(msg, "encoding"))
    if encoding.startswith("32F"):
        raise StreamError(f"image encoding '{encoding}' is not a camera image; use a colour or mono topic")
    pixels = image_array(msg)
    if encoding in _YUV:
        cv2 = require_cv2(f"{encoding} images")
        return np.asarray(cv2.cvtColor(pixels, getattr(cv2, _YUV[encoding])))
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2)
    if encoding.startswith("rgb"):
        return np.ascontiguousarray(pixels[..., 2::-1])
    return np.ascontiguousarray(pixels[..., :3])


def compressed_to_bgr(msg: Any) -> np.ndarray:
    """A sensor_msgs/CompressedImage (JPEG or PNG) as an (H, W, 3) uint8 BGR frame."""
    fmt = str(field(msg, "format"))
    if "compressedDepth" in fmt:
        raise StreamError(f"compressed image format '{fmt}' is a depth map, not a camera image")
    cv2 = require_cv2("compressed images")
    image = cv2.imdecode(np.frombuffer(bytes(field(msg, "data")), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise StreamError(f"compressed image (format '{fmt}') could not be decoded as JPEG or PNG")
    return np.asarray(image)


def to_bgr(datatype: str, msg: Any) -> np.ndarray:
    """A decoded Image or CompressedImage message of ROS type `datatype` as a BGR frame."""
    return compressed_to_bgr(msg) if datatype.endswith("CompressedImage") else image_to_bgr(msg)


def image_msg(array: np.ndarray, encoding: str, header: dict[str, Any]) -> dict[str, Any]:
    """An (H, W) or (H, W, C) array already in `encoding`'s layout as a sensor_msgs/Image dict."""
    dtype, channels = LAYOUTS[encoding]
    array = np.ascontiguousarray(array)
    if array.dtype != dtype or (array.shape[2] if array.ndim == 3 else 1) != channels:
        raise StreamError(
            f"{encoding} needs {channels}-channel {np.dtype(dtype)}, got {array.dtype} {array.shape}"
        )
    height, width = array.shape[:2]
    return {
        "header": header,
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": int(sys.byteorder == "big" and array.itemsize > 1),
        "step": array.strides[0],
        "data": array.tobytes(),
    }
