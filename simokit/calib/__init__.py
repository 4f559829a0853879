"""INT8 calibration of a bundle: calibration data, ORT QDQ quantisation, TensorRT cache, report.

frames.py     frames from an image folder or a video (the runtime's sources), the embedded scenes
              or an NYUv2 folder, sampled by index
readers.py    a deterministic subset of N frames, pre-processed exactly as the runtime does
graph.py      which nodes of the ONNX graph are quantised and which stay in float
ort_quant.py  ONNX Runtime static quantisation to Q/DQ (symmetric int8) that TensorRT also runs
sensitivity.py  one block at a time, then the exclusion set that keeps every task within budget
graph_eval.py per-task metrics and latency of a graph through the runtime's engine
report.py     the FP32 / FP16 / INT8 table and the score-vs-latency plot
workflow.py   `simokit calib`: all of the above, published into the bundle atomically
trt_cache.py  TensorRT's calibration cache text format (plain Python)
trt_calib.py  the legacy route: the runtime's TensorRT calibrator writing calib.cache (needs TensorRT)
"""
