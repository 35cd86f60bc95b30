"""OpenVINO (CPU plugin, f32 pinned; :mod:`rtseg.onnx_runtimes`): ``openvino`` and
``openvino-int8``, the network exported in OpenVINO's graph form (standard ops only) and, for
int8, quantised to QDQ, which OpenVINO runs with VNNI / AMX int8 kernels."""

from __future__ import annotations

from rtseg.backends.graph import graph_backends

BACKENDS = graph_backends("openvino", "openvino", "OpenVINO, CPU, float32; the network exported in its graph form",
                          "OpenVINO running the int8 (QDQ) export, calibrated: the fastest measured with VNNI, level with torch-bf16 on AMX")
