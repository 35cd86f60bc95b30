"""rtseg.backends.graph: the shipped models carry their int8 graphs (make shipped-graphs); the
OpenVINO class runner (the class map inside the graph)."""

from __future__ import annotations

import numpy as np
import pytest

from rtseg.backends import (
    BuildOptions,
    default_calibration,
    get_backend,
)
from rtseg.weights import load_weights


def test_the_shipped_models_carry_their_int8_graphs():
    # `make shipped-graphs` builds them; a retrained model or a new release without rebuilding
    # would leave auto exporting and calibrating on the first frame (and a stale file unused).
    from rtseg.backends.graph import SHIPPED_GRAPH_BACKENDS, graph_name, shipped_graphs
    from rtseg.checkpoint import shipped_models

    expected = set()
    for name in shipped_models():
        loaded = load_weights(name)
        for backend in SHIPPED_GRAPH_BACKENDS:
            b = get_backend(backend)
            options = BuildOptions(calibration=default_calibration(), mean=loaded.mean, std=loaded.std)
            expected.add(graph_name(loaded.model, tuple(loaded.input_size), b.onnx_runtime, b.int8, options))
    assert {p.name for p in shipped_graphs().glob("*.onnx")} == expected, "run make shipped-graphs"


def test_openvino_class_runner_matches_the_class_map_of_its_logits_on_street_frames():
    # The video and server path at the working size: the class map inside OpenVINO. It must pick
    # the class rtseg eval's path (the logits, then their class map) picks on the same graph.
    from rtseg.inference import Segmenter

    pytest.importorskip("openvino")
    loaded = load_weights("enet-camvid")
    h, w = loaded.input_size
    frames = [np.ascontiguousarray(f[:h, :w]) for f in default_calibration()[:4] if f.shape[0] >= h and f.shape[1] >= w]
    assert len(frames) >= 2
    for backend in ("openvino", "openvino-int8"):
        seg = Segmenter(loaded.model, loaded.classes, loaded.mean, loaded.std, loaded.input_size, "cpu",
                        backend=backend, threads=2)
        assert seg.class_runner is not None
        fast = seg.predict_batch(frames[:2])  # (2, H, W) from the class runner
        runner, seg.class_runner = seg.class_runner, None
        slow = seg.predict_batch(frames[:2])  # the logits path eval scores
        assert fast.dtype == np.uint8 and fast.shape == slow.shape == (2, h, w)
        assert (fast == slow).mean() > 0.9999, backend  # ties aside, the same classes
        assert np.array_equal(runner(seg.preprocess(frames[:1])), fast[:1])  # one frame: the one-request path
    plain = Segmenter(loaded.model, loaded.classes, loaded.mean, loaded.std, loaded.input_size, "cpu",
                      backend="onnxruntime")
    assert plain.class_runner is None  # ONNX Runtime: the logits path
