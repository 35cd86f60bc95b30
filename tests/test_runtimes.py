"""Exports for OpenCV DNN and OpenVINO (``rtseg export --target``) at rtseg's parity gate, the
runtimes' refusals, and ``rtseg bench --backend opencv|openvino``. Small inputs: the figures on
real frames are tools/runtime_parity.py's (docs/deployment_runtimes.md)."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper

import rtseg
from conftest import trained_like, with_bn_statistics
from rtseg.benchmarks.inference import time_network
from rtseg.deploy.export import (
    MIN_PIXEL_AGREEMENT,
    ExportMismatchError,
    RuntimeFaultError,
    check_parity,
    compare,
    export_onnx,
    opencv_known_fault,
)
from rtseg.errors import RtsegError
from rtseg.models import create_model
from rtseg.onnx_runtimes import RuntimeRefusal, available, load_runner, version

SIZE = (48, 64)  # (H, W): a multiple of 8, as ENet's unpooling needs


@pytest.fixture(scope="module")
def enet_for_opencv(tmp_path_factory):
    path = tmp_path_factory.mktemp("opencv") / "enet.onnx"
    return path, export_onnx(trained_like("enet"), path, SIZE, target="opencv")


def test_enet_for_opencv_passes_the_parity_gate_in_opencv_without_a_scatter(enet_for_opencv):
    path, report = enet_for_opencv
    assert report["runtime"]["name"] == "opencv"
    assert report["parity"]["pixel_agreement"] >= MIN_PIXEL_AGREEMENT
    # The standard-op unpooling: a gather (DepthToSpace), no ConstantOfShape + ScatterND.
    assert {"DepthToSpace", "Where"} <= set(report["ops"]) and "ScatterND" not in report["ops"]
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["rtseg_target"] == "opencv"


def test_bisenetv2_for_opencv_passes_the_parity_gate(tmp_path):
    report = export_onnx(trained_like("bisenetv2"), tmp_path / "b.onnx", SIZE, target="opencv")
    assert report["parity"]["pixel_agreement"] >= MIN_PIXEL_AGREEMENT and "Resize" in report["ops"]


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


def test_export_target_errors_name_the_option(tmp_path):
    model = create_model("enet", num_classes=3)
    with pytest.raises(RtsegError, match=r"^--target 'tensorrt': expected one of onnxruntime, opencv, openvino$"):
        export_onnx(model, tmp_path / "m.onnx", SIZE, target="tensorrt")
    with pytest.raises(RtsegError, match=r"^--int8 --target opencv: OpenCV DNN cannot run int8 \(QDQ\) graphs .*; "
                                         r"use --target onnxruntime or openvino$"):
        rtseg.export("enet-camvid", tmp_path / "m.onnx", int8=True, calibrate="camvid:train:2", target="opencv")
    with pytest.raises(RtsegError, match="--target opencv is for ONNX graphs"):
        rtseg.export("enet-camvid", tmp_path / "m.pt", format="torchscript", target="opencv")


def test_bench_times_an_opencv_graph(enet_for_opencv):
    path, _ = enet_for_opencv
    r = time_network(None, SIZE, "opencv", threads=1, warmup=1, iters=2, onnx_file=path)
    assert r["backend"] == "opencv" and r["median_ms"] > 0 and r["params"] > 0
    assert r["fps"] == pytest.approx(1000 / r["median_ms"], rel=0.01)


@pytest.mark.skipif(not available("openvino"), reason="OpenVINO is not installed: pip install 'rtseg[openvino]'")
def test_enet_for_openvino_passes_the_parity_gate_and_benches(tmp_path):
    path = tmp_path / "enet.onnx"
    report = export_onnx(trained_like("enet"), path, SIZE, target="openvino")
    assert report["runtime"]["name"] == "openvino" and report["parity"]["pixel_agreement"] >= MIN_PIXEL_AGREEMENT
    r = time_network(None, SIZE, "openvino", threads=1, warmup=1, iters=2, onnx_file=path)
    assert r["backend"] == "openvino" and r["median_ms"] > 0


@pytest.mark.skipif(not available("openvino"), reason="OpenVINO is not installed: pip install 'rtseg[openvino]'")
def test_int8_for_openvino_is_checked_in_openvino_and_benches(enet_ckpt_bn, tiny_camvid, tmp_path):
    out = tmp_path / "enet_int8.onnx"
    report = rtseg.export(enet_ckpt_bn, out, size=(24, 32), int8=True, calibrate="camvid:train:3",
                          data_root=tiny_camvid, target="openvino")
    graph = onnx.load(str(out))
    ops = {n.op_type for n in graph.graph.node}
    # The QDQ pairs of ONNX Runtime's quantiser, around OpenVINO's standard-op unpooling.
    assert {"QuantizeLinear", "DequantizeLinear", "DepthToSpace"} <= ops and "ScatterND" not in ops
    assert {p.key: p.value for p in graph.metadata_props}["rtseg_target"] == "openvino"
    assert report["runtime"]["name"] == "openvino" and report["int8"]["runtime"]["name"] == "openvino"
    assert report["int8"]["parity_on_calibration_frames"]["pixel_agreement"] >= 0.9
    seg = rtseg.load_model(out, runtime="openvino")
    assert seg.predict(np.zeros((24, 32, 3), np.uint8)).shape == (24, 32)
    net = trained_like("enet")
    r, f = (time_network(net, SIZE, b, threads=1, warmup=1, iters=2) for b in ("openvino-int8", "openvino"))
    # The int8 backend times the quantised graph: int8 weights, well under the float file's size.
    assert r["backend"] == "openvino-int8" and r["median_ms"] > 0 and r["file_mb"] < 0.6 * f["file_mb"]


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


class _PoolUnpool(torch.nn.Module):
    """Max-pooling with indices and the unpooling that uses them, as ENet's bottlenecks do."""

    def __init__(self, kernel: int = 2, padding: int = 0) -> None:
        super().__init__()
        self.kernel, self.padding = kernel, padding

    def forward(self, x):
        values, indices = F.max_pool2d(x, self.kernel, stride=2, padding=self.padding, return_indices=True)
        return torch.ops.aten.max_unpool2d(values * 2, indices, list(x.shape[-2:]))


def test_openvino_pooling_without_indices_output_keeps_pytorchs_ties(tmp_path):
    # --target openvino writes max-pooling with indices as corners + Max + Where (OpenVINO runs the
    # ONNX MaxPool's indices output on a reference kernel: 80-89% of ENet's time). Values from
    # {0, 1, 2}: most windows hold ties, which must resolve first-in-window as PyTorch's kernel
    # does, or the unpooled value lands on another pixel. Checked in ONNX Runtime (the graph is
    # standard ONNX; OpenVINO's own run is the parity test above).
    path = tmp_path / "pool.onnx"
    report = export_onnx(_PoolUnpool(), path, (8, 12), target="openvino", check=False, fold_bn=False)
    assert "MaxPool" not in report["ops"] and "ScatterND" not in report["ops"]
    x = torch.randint(0, 3, (2, 3, 8, 12)).float()
    expected = _PoolUnpool()(x).numpy()
    np.testing.assert_array_equal(load_runner(path, "onnxruntime")(x.numpy()), expected)


def test_openvino_refuses_other_pooling_with_indices_in_one_line(tmp_path):
    with pytest.raises(RtsegError, match=r"^--target openvino writes max-pooling with indices for 2x2 windows "
                                         r"of stride 2 without padding only; this model pools with kernel "):
        export_onnx(_PoolUnpool(kernel=3, padding=1), tmp_path / "p.onnx", (8, 12), target="openvino", check=False)


needs_openvino = pytest.mark.skipif(not available("openvino"), reason="OpenVINO is not installed: "
                                    "pip install 'rtseg[openvino]'")


@pytest.mark.parametrize("runtime", ["opencv", pytest.param("openvino", marks=needs_openvino)])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_predict_and_eval_run_an_export_in_its_runtime_as_pytorch_does(enet_ckpt_bn, tiny_camvid, tmp_path,
                                                                        runtime, dynamic):
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path / "enet.onnx"
    rtseg.export(enet_ckpt_bn, out, size=(24, 32), target=runtime, dynamic=dynamic)
    reference, seg = rtseg.load_model(enet_ckpt_bn, device="cpu"), rtseg.load_model(out, runtime=runtime)
    assert seg.name == f"enet (onnx, {runtime})" and seg.fixed_size == (None if dynamic else [24, 32])
    rng = np.random.default_rng(0)
    # Server worker threads at once (OpenVINO: a request per thread; OpenCV: one pass at a time).
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(24, 32)] * 6 + [(48, 64)] * 2]
    with ThreadPoolExecutor(4) as pool:
        masks = list(pool.map(seg.predict, images))
    for image, mask in zip(images, masks):
        assert mask.shape == image.shape[:2] and (mask == reference.predict(image)).mean() >= 0.99
    if dynamic:  # the network at another size (the Segmenter resizes frames to the training size)
        assert seg.model(torch.zeros(2, 3, 48, 64)).shape == (2, 11, 48, 64)
        assert len(seg.model._runners) == (2 if runtime == "openvino" else 1)  # OpenVINO: one per shape met
    scores = [rtseg.evaluate(w, "camvid", "val", data_root=tiny_camvid, progress=False, runtime=r)["miou"]
              for w, r in [(enet_ckpt_bn, None), (out, runtime)]]
    assert scores[1] == pytest.approx(scores[0], abs=0.01)


def test_runtime_is_the_older_spelling_of_backend_and_an_unknown_one_a_one_line_error(enet_ckpt, tmp_path, capsys):
    from rtseg.cli import main
    from rtseg.errors import CheckpointError

    assert rtseg.load_model(enet_ckpt, runtime="openvino").backend == "openvino"  # PyTorch weights: exported for it
    with pytest.raises(CheckpointError, match=r"^--runtime 'tensorrt': expected one of onnxruntime, opencv, openvino$"):
        rtseg.load_model(tmp_path / "m.onnx", runtime="tensorrt")
    image = tmp_path / "in.png"
    from conftest import save_png

    save_png(image, np.zeros((24, 32, 3), np.uint8))
    assert main(["predict", str(image), "--weights", str(enet_ckpt), "--runtime", "opencv",
                 "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err == ["rtseg: --runtime opencv is deprecated and goes in the next release: use --backend opencv"]
    assert "(enet, opencv, cpu)" in captured.out


def _random_classifiers(name: str) -> torch.nn.Module:
    """``name`` (11 classes) with BN statistics and its zero-initialised class layers (FCN-8s's
    scores) drawn at random, so that the logits are not all zero and parity means something."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=11)
    for p in model.parameters():
        if p.dim() == 4 and not p.detach().abs().sum():
            torch.nn.init.normal_(p, std=0.05)
    return with_bn_statistics(model)


@pytest.mark.parametrize("name", ["ddrnet23_slim", "pidnet_s", "fcn8s_mobilenetv3"])
def test_pyramid_pooling_and_mobilenetv3_exports_agree_with_pytorch_in_opencv(tmp_path, name):
    # DDRNet's DAPPM / PIDNet's PAPPM upsample 1x1 and 1x2 planes at 64x96: OpenCV DNN 5.0's
    # bilinear Resize reads garbage there (refused, naming the op); 5.1 runs them. MobileNetV3's
    # squeeze-excitation gate hardsigmoid(s) * x is written as a Clip: OpenCV fuses HardSigmoid +
    # Mul into HardSwish(s) and returned (N, C, 1, 1) (tools/opencv_op_probe.py).
    model = _random_classifiers(name)
    if version("opencv").startswith("5.0.") and name != "fcn8s_mobilenetv3":
        with pytest.raises(RuntimeFaultError, match=r"^--target opencv: OpenCV DNN 5\.0\.\d+ miscomputes \w+'s "
                                                    r"bilinear Resize .*use --target onnxruntime or openvino$"):
            export_onnx(model, tmp_path / f"{name}.onnx", (64, 96), target="opencv")
        return
    report = export_onnx(model, tmp_path / f"{name}.onnx", (64, 96), target="opencv")
    parity = report["parity"]
    assert report["runtime"]["name"] == "opencv" and parity["logit_scale"] > 0.1
    assert parity["pixel_agreement"] >= MIN_PIXEL_AGREEMENT
    assert parity["p999_abs_diff"] <= 1e-4 + 5e-3 * parity["logit_scale"]
    assert "HardSigmoid" not in report["ops"]
    if name == "fcn8s_mobilenetv3":
        assert {"Clip", "HardSwish"} <= set(report["ops"])


def test_the_onnxruntime_graph_of_mobilenetv3_keeps_its_hardsigmoid(tmp_path):
    # The Clip form is OpenCV's alone: ONNX Runtime and OpenVINO keep the exporter's graph.
    report = export_onnx(_random_classifiers("fcn8s_mobilenetv3"), tmp_path / "m.onnx", (64, 96), check=False)
    assert "HardSigmoid" in report["ops"] and "Clip" not in report["ops"]


def test_opencv_50s_resize_fault_is_named_in_one_line_and_51_is_not_refused(tmp_path):
    path = tmp_path / "ddrnet.onnx"
    export_onnx(_random_classifiers("ddrnet23_slim"), path, (64, 96), target="opencv", check=False)
    proto = onnx.load(str(path))
    fault = opencv_known_fault(proto, "DDRNet", "5.0.0")
    assert re.fullmatch(r"--target opencv: OpenCV DNN 5\.0\.0 miscomputes DDRNet's bilinear Resize of a 1x[12] plane "
                        r"\(node \S+: a side of 1 gives values up to 1e30 or NaN; fixed in OpenCV 5\.1\); "
                        r"use --target onnxruntime or openvino", str(fault))
    assert opencv_known_fault(proto, "DDRNet", "5.1.0") is None


def test_nan_logits_fail_the_parity_check():
    # NaN drops out of max() and np.quantile's max: the bounds must see it as an infinite difference.
    model = torch.nn.Conv2d(3, 2, 1).eval()

    def run(a):
        out = model(torch.from_numpy(a)).detach().numpy()
        out[0, 1, 0, 0] = np.nan
        return out

    report = compare(model, run, [torch.randn(1, 3, 8, 8)], argmax=False)
    assert report.max_abs_diff == np.inf
    with pytest.raises(ExportMismatchError, match=r"max inf"):
        check_parity(report)


def test_openvino_runs_a_batch_as_side_by_side_requests_with_the_same_output():
    pytest.importorskip("openvino")
    from rtseg.backends.graph import shipped_graphs
    from rtseg.onnx_runtimes import load_runner

    path = sorted(shipped_graphs().glob("*-openvino-int8.onnx"))[0]
    x = np.random.default_rng(0).standard_normal((2, 3, 360, 480)).astype(np.float32)
    two = load_runner(path, "openvino", 1, input_shape=(2, 3, 360, 480))(x)
    one = load_runner(path, "openvino", 1, input_shape=(1, 3, 360, 480))
    assert np.array_equal(two, np.concatenate([one(x[:1]), one(x[1:])]))
