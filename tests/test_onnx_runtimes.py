"""rtseg.onnx_runtimes: a graph a runtime cannot run is refused in one line with the reason, a
missing runtime names its install, and OpenVINO runs a batch as side-by-side requests."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rtseg.errors import RtsegError
from rtseg.onnx_runtimes import RuntimeRefusal, available, load_runner


def _save(tmp_path, name, nodes, initializers=(), domains=()):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, 2, 2])
    graph = helper.make_graph(nodes, name, [x], [y], initializer=list(initializers))
    opsets = [helper.make_opsetid("", 18)] + [helper.make_opsetid(d, 1) for d in domains]
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


def test_the_scatter_unpooling_runs_right_or_is_refused_with_the_reason(tmp_path):
    # The exporter's max-unpooling, reduced: zeros from ConstantOfShape(Shape(x)), ScatterND.
    # OpenCV DNN 5.0 fails on its first forward (constantofshape_layer.cpp, blobs.size() == 1);
    # 5.1 runs it. Either way no wrong values: the right mask or a refusal naming the reason.
    idx = helper.make_tensor("idx", TensorProto.INT64, [1, 4], [0, 0, 1, 1])
    val = helper.make_tensor("val", TensorProto.FLOAT, [1], [5.0])
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ConstantOfShape", ["s"], ["z"]),
             helper.make_node("ScatterND", ["z", "idx", "val"], ["y"])]
    path = _save(tmp_path, "scatter", nodes, [idx, val])
    a = np.zeros((1, 1, 2, 2), np.float32)
    expected = np.zeros_like(a)
    expected[0, 0, 1, 1] = 5.0
    np.testing.assert_array_equal(load_runner(path, "onnxruntime")(a), expected)
    try:
        out = load_runner(path, "opencv")(a)
    except RuntimeRefusal as e:
        assert re.fullmatch(r"OpenCV DNN \S+ cannot (load|run) scatter.onnx: .+", str(e))
    else:
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("runtime", ["opencv", pytest.param("openvino", marks=pytest.mark.skipif(
    not available("openvino"), reason="OpenVINO is not installed: pip install 'rtseg[openvino]'"))])
def test_a_graph_a_runtime_cannot_run_is_refused_with_the_runtime_and_the_reason(tmp_path, runtime):
    # An operator no runtime has (a private domain): a one-line refusal, never a crash or a guess.
    # (ONNX Runtime's load errors are rtseg's CheckpointError, tested with rtseg eval.)
    path = _save(tmp_path, "custom", [helper.make_node("NoSuchOp", ["x"], ["y"], domain="org.rtseg.test")],
                 domains=["org.rtseg.test"])
    name = {"opencv": "OpenCV DNN", "openvino": "OpenVINO"}[runtime]
    with pytest.raises(RuntimeRefusal, match=rf"^{name} \S+ cannot (load|run) custom.onnx: \S.*") as e:
        load_runner(path, runtime)(np.zeros((1, 1, 2, 2), np.float32))
    assert "\n" not in str(e.value)


def test_a_missing_runtime_is_a_one_line_error_with_the_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino":
            raise ImportError(name=name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(RtsegError, match=r"^OpenVINO is not installed \(openvino is missing\): "
                                         r"pip install 'rtseg\[openvino\]'$"):
        load_runner("m.onnx", "openvino")


def test_openvino_runs_a_batch_as_side_by_side_requests_with_the_same_output():
    pytest.importorskip("openvino")
    from rtseg.backends.graph import shipped_graphs
    from rtseg.onnx_runtimes import load_runner

    path = sorted(shipped_graphs().glob("*-openvino-int8.onnx"))[0]
    x = np.random.default_rng(0).standard_normal((2, 3, 360, 480)).astype(np.float32)
    two = load_runner(path, "openvino", 1, input_shape=(2, 3, 360, 480))(x)
    one = load_runner(path, "openvino", 1, input_shape=(1, 3, 360, 480))
    assert np.array_equal(two, np.concatenate([one(x[:1]), one(x[1:])]))
