"""Robot-side code: no torch imports here or below (a Jetson installs only numpy, ORT/TensorRT, OpenCV).

`simokit.runtime.load(bundle)` is the one entry point to every backend.
"""

from simokit.runtime.loading import load
from simokit.runtime.sources import Source, StreamError, open_source
from simokit.runtime.stream import Stream
from simokit.runtime.stream_types import Frame, Reconnect

__all__ = ["Frame", "Reconnect", "Source", "Stream", "StreamError", "load", "open_source"]
