"""Robot-side code: no torch imports here or below (a Jetson installs only numpy, ORT/TensorRT, OpenCV)."""
