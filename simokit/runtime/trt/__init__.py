"""TensorRT engines for a bundle: build (builder.py), load and run (runner.py).

The pure parts (optimisation-profile shapes, FP32 layer selection on the ONNX graph, the engine
sidecar) import no TensorRT or CUDA and are tested without a GPU; builder, runner, calibrator and
cuda import their libraries only when called. Importing this package imports neither.
"""

ENGINE_FILE = "model.engine"
SIDECAR_FILE = "model.engine.json"
