"""ONNX Runtime (CPU execution provider): ``onnxruntime`` and ``onnxruntime-int8`` (static int8
QDQ). Its int8 is slower than its float on the CPUs measured so far (docs/deployment.md)."""

from __future__ import annotations

from rtseg.backends.graph import graph_backends

BACKENDS = graph_backends("onnxruntime", "onnxruntime",
                          "ONNX Runtime, CPU; the network exported to ONNX (or an .onnx file as it is)",
                          "ONNX Runtime running the int8 (QDQ) export, calibrated")
