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


_KERNELS_SCRIPT = """
import glob, sys
import openvino as ov
graph = sorted(glob.glob(sys.argv[1] + "/*-openvino-int8.onnx"))[0]
model = ov.Core().read_model(graph)
model.reshape([1, 3, 360, 480])
compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1})
for op in compiled.get_runtime_model().get_ops():
    info = op.get_rt_info()
    if "primitiveType" in info:
        print(info["primitiveType"].astype(str))
"""


def test_an_isa_cap_makes_openvino_run_the_lower_kernels(tmp_path):
    # docs/video.md and docs/serving.md give AVX2 and AVX512-VNNI figures measured on an AMX Xeon
    # under ONEDNN_MAX_CPU_ISA: they stand for those CPUs only if OpenVINO's oneDNN kernels obey it.
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("openvino")
    from rtseg.runtime import cpu_flags

    if not cpu_flags()["avx512f"]:
        pytest.skip("a CPU without AVX-512 has nothing above AVX2 to cap")
    graphs = Path(__file__).resolve().parents[2] / "rtseg" / "shipped" / "graphs"

    def kernels(cap: str | None) -> set[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "OV_CPU_MAX_ISA")}
        if cap:
            env.update(ONEDNN_MAX_CPU_ISA=cap, OV_CPU_MAX_ISA=cap)
        done = subprocess.run([sys.executable, "-c", _KERNELS_SCRIPT, str(graphs)], env=env, check=True,
                              capture_output=True, text=True)
        return set(done.stdout.split())

    uncapped, capped = kernels(None), kernels("AVX2")
    assert any("avx512" in k for k in uncapped)  # the convolutions use the CPU's best when free
    assert not any("avx512" in k or "amx" in k for k in capped), capped
    assert any("avx2" in k and k.endswith("_I8") for k in capped)  # int8 convolutions on AVX2 kernels
