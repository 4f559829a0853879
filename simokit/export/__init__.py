"""Export a merged multi-task model to one ONNX graph and verify it against torch."""
