"""OpenCV DNN (its own CPU backend): ``opencv``, the network exported in its graph form. No int8:
OpenCV DNN 5.1 cannot run QDQ graphs."""

from __future__ import annotations

from rtseg.backends.graph import graph_backends

BACKENDS = graph_backends("opencv", "cv2", "OpenCV DNN, CPU, float32; the network exported in its graph form")
