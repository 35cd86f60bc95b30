"""rtseg.deploy.export (rtseg export): ONNX and TorchScript parity for every model, dynamic graphs,
int8 and its sensitivity report, the OpenCV DNN and OpenVINO targets (--target) at rtseg's parity
gate, and the parity check itself. Small inputs: the figures on real frames are
tools/runtime_parity.py's (docs/deployment_runtimes.md)."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

import rtseg
from conftest import EXPORT_SIZE as SIZE
from conftest import trained_like, with_bn_statistics
from rtseg import list_models
from rtseg.benchmarks.inference import time_network
from rtseg.checkpoint import make_checkpoint, save_checkpoint
from rtseg.datasets.camvid import CLASSES as CAMVID
from rtseg.deploy.export import (
    MIN_PIXEL_AGREEMENT,
    ExportMismatchError,
    RuntimeFaultError,
    check_parity,
    compare,
    export_onnx,
    export_torchscript,
    opencv_known_fault,
)
from rtseg.errors import RtsegError
from rtseg.models import create_model
from rtseg.onnx_runtimes import available, load_runner, version

SIZES = {"bisenetv2": (45, 61), "dabnet": (45, 61), "ddrnet23_slim": (45, 61), "edanet": (45, 61), "pidnet_s": (45, 61), "enet": (45, 61), "erfnet": (45, 61), "fcn8s_mobilenetv3": (45, 61), "fcn8s": (40, 56), "icnet": (45, 61),
         "pspnet50": (45, 61)}


# fcn8s (VGG16, 134 M parameters) takes 27 s of the quick suite's 5 min: it runs in make test-slow.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "fcn8s" else n for n in list_models()])
def test_onnx_export_parity(name, tmp_path):
    report = export_onnx(trained_like(name), tmp_path / "m.onnx", SIZES[name])  # raises on divergence
    assert report["parity"]["pixel_agreement"] >= 0.999
    # ENet and ERFNet keep the BNs that follow a concatenation (conv | max-pool): nothing to fold into.
    # BN after a conv is folded; pre-activation BN (BN-ReLU-conv heads and pyramid pooling) and
    # ENet/ERFNet's BN after concatenations have no conv before them to fold into.
    assert "BatchNormalization" not in report["ops"] or name in ("enet", "erfnet", "edanet", "bisenetv2", "dabnet", "ddrnet23_slim",
                                                                  "pidnet_s")


@pytest.mark.parametrize("name", list_models())
def test_torchscript_export_parity(name, tmp_path):
    report = export_torchscript(trained_like(name), tmp_path / "m.pt", SIZES[name])
    assert report["parity"]["pixel_agreement"] >= 0.999


@pytest.mark.slow
def test_enet_dynamic_argmax_export_keeps_unpooling(tmp_path):
    import onnxruntime as ort

    model = trained_like("enet")
    report = export_onnx(model, tmp_path / "d.onnx", (48, 72), dynamic=True, argmax=True)
    assert report["dynamic_axes"].startswith("batch, height, width")
    assert "ScatterND" in report["ops"] and "ArgMax" in report["ops"]  # unpooling as a scatter
    session = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 64, 40)  # another, non-square size
    with torch.no_grad():
        ref = model(x).argmax(1).numpy()
    out = session.run(None, {"image": x.numpy()})[0]
    assert out.shape == (2, 64, 40) and (out == ref).mean() > 0.999


def test_export_int8_and_eval_of_onnx(enet_ckpt_bn, tiny_camvid, tmp_path):
    out = tmp_path / "enet_int8.onnx"
    returned = rtseg.export(enet_ckpt_bn, out, size=(24, 32), int8=True, calibrate="camvid:train:3",
                            data_root=tiny_camvid)
    report = json.loads((tmp_path / "enet_int8.onnx.json").read_text())
    assert report == json.loads(json.dumps(returned))
    assert report["int8"]["calibration_frames"] == 3 and report["file_mb"] < report["float_mb"]
    import onnx

    graph = onnx.load(str(out)).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    # Short names throughout (the exporter's and quantiser's names are a fifth of the file).
    assert max(len(n) for node in graph.node for n in [node.name, *node.input, *node.output]) <= 12
    res = rtseg.evaluate(out, "camvid", "val", data_root=tiny_camvid, progress=False)
    # The int8 graph really ran through rtseg eval: its mIoU is the mean of its per-class IoUs.
    assert res["num_images"] == 3 and res["miou"] == pytest.approx(np.nanmean(list(res["per_class_iou"].values())))


def test_int8_keep_float_by_module_path(enet_ckpt_bn, tiny_camvid, tmp_path):
    import onnx

    out = tmp_path / "q.onnx"
    report = rtseg.export(enet_ckpt_bn, out, size=(24, 32), int8=True, calibrate="camvid:train:2",
                          data_root=tiny_camvid, keep_float=["up5", "stage5"])
    graph = onnx.load(str(out)).graph
    float_weights = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 4}
    float_convs = [n for n in graph.node if n.op_type == "Conv" and n.input[1] in float_weights]
    # up5 has 3 convolutions (main, 1x1 projection, 1x1 expansion), stage5 3: all left in float;
    # every other convolution reads dequantised int8 weights.
    assert len(float_convs) == 6
    assert len(report["int8"]["float_nodes"]) >= 6


def test_export_errors(enet_ckpt_bn, tmp_path):
    with pytest.raises(RtsegError, match="--int8 needs --calibrate"):
        rtseg.export(enet_ckpt_bn, tmp_path / "x.onnx", int8=True)
    with pytest.raises(RtsegError, match="--int8 needs --format onnx"):
        rtseg.export(enet_ckpt_bn, tmp_path / "x.pt", format="torchscript", int8=True, calibrate="camvid:val:2")
    with pytest.raises(RtsegError, match="--format 'coreml'"):
        rtseg.export(enet_ckpt_bn, tmp_path / "x.pt", format="coreml")
    with pytest.raises(RtsegError, match="--format executorch: --argmax, --target apply to ONNX exports only"):
        rtseg.export(enet_ckpt_bn, tmp_path / "x.pte", format="executorch", argmax=True, target="openvino")
    with pytest.raises(RtsegError, match=r"--format ncnn --int8: rtseg has no int8 form of ncnn .*--format onnx or "
                                         r"executorch or tflite"):
        rtseg.export(enet_ckpt_bn, tmp_path / "x.param", format="ncnn", int8=True)
    no_size = tmp_path / "nosize.pt"
    save_checkpoint(make_checkpoint(create_model("enet", num_classes=11), "enet", {}, CAMVID, (0.5,) * 3,
                                    (0.5,) * 3), no_size)
    with pytest.raises(RtsegError, match="--size HxW is needed"):
        rtseg.export(no_size, tmp_path / "x.onnx")
    assert not list(tmp_path.glob("x.*"))


def test_export_default_size_is_the_checkpoints(enet_ckpt_bn, tmp_path):
    report = rtseg.export(enet_ckpt_bn, tmp_path / "m.pt", format="torchscript")
    assert report["size"] == [24, 32] and report["parity"]["pixel_agreement"] == 1.0


@pytest.mark.slow  # 26 s: two dynamic exports checked at three sizes
@pytest.mark.parametrize("name", ["ddrnet23_slim", "pidnet_s"])
def test_pyramid_pooling_networks_export_dynamic_onnx(name, tmp_path):
    # Adaptive pooling with sizes that do not divide is the usual export pitfall of pyramid
    # pooling: these use fixed pools and a global mean, so a dynamic graph traced at one size
    # must match PyTorch at another (export_onnx checks a second, non-divisible size itself).
    report = export_onnx(trained_like(name), tmp_path / "m.onnx", (64, 96), dynamic=True)
    assert "height" in report["dynamic_axes"] and report["parity"]["inputs"] == 3
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((1, 3, 45, 61)).astype(np.float32)
    with torch.no_grad():
        expected = trained_like(name)(torch.from_numpy(x)).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert got.shape == expected.shape and (got.argmax(1) == expected.argmax(1)).mean() > 0.999


@pytest.mark.slow
def test_int8_sensitivity_report_and_the_models_float_layers(enet_ckpt_bn, tiny_camvid, tmp_path):
    from rtseg.models.enet import ENet

    report = rtseg.export(enet_ckpt_bn, tmp_path / "q.onnx", size=(24, 32), int8=True, calibrate="camvid:train:2",
                          data_root=tiny_camvid, sensitivity="camvid:val:2")
    int8 = report["int8"]
    assert int8["keep_float"] == list(ENet.int8_keep_float)  # the model's default
    # The exported model on frames the calibration did not see: most pixels agree with PyTorch.
    assert int8["parity_on_sensitivity_frames"]["pixel_agreement"] > 0.5
    rows = int8["sensitivity"]
    assert rows[0]["float_module"] is None and rows[0]["gain"] == 0
    modules = {name for name, child in ENet(11).named_children() if list(child.parameters())}
    assert {r["float_module"] for r in rows[1:]} == modules
    gains = [r["gain"] for r in rows[1:]]
    assert gains == sorted(gains, reverse=True)
    for r in rows[1:]:
        assert r["gain"] == pytest.approx(r["pixel_agreement"] - rows[0]["pixel_agreement"], abs=2e-5)
    every = rtseg.export(enet_ckpt_bn, tmp_path / "all.onnx", size=(24, 32), int8=True, calibrate="camvid:train:2",
                         data_root=tiny_camvid, keep_float=[])
    assert every["int8"]["keep_float"] == [] and len(every["int8"]["float_nodes"]) < len(int8["float_nodes"])
    with pytest.raises(RtsegError, match="--sensitivity 'camvid:val'"):
        rtseg.export(enet_ckpt_bn, tmp_path / "x.onnx", size=(24, 32), int8=True, calibrate="camvid:train:2",
                     data_root=tiny_camvid, sensitivity="camvid:val")
    with pytest.raises(RtsegError, match="--sensitivity measures int8"):
        rtseg.export(enet_ckpt_bn, tmp_path / "x.onnx", sensitivity="camvid:val:2")


def test_parity_check_tolerates_a_moved_unpooling_position_only():
    from rtseg.deploy.export import ExportMismatchError, ParityReport, check_parity

    # limit = 1e-4 + 5e-3 * 30 = 0.1501: a few logits off by up to 10x the limit (a max-pool
    # winner flipped by rounding), all others within it, classes the same: accepted.
    check_parity(ParityReport(0.13, 1.0, 2, logit_scale=30.0, p999_abs_diff=0.04))
    for bad in (ParityReport(0.13, 1.0, 2, logit_scale=30.0, p999_abs_diff=0.2),  # widespread
                ParityReport(2.0, 1.0, 2, logit_scale=30.0, p999_abs_diff=0.04),  # one gross error
                ParityReport(0.01, 0.99, 2, logit_scale=30.0, p999_abs_diff=0.01)):  # classes differ
        with pytest.raises(ExportMismatchError):
            check_parity(bad)


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


def test_export_target_errors_name_the_option(tmp_path):
    model = create_model("enet", num_classes=3)
    with pytest.raises(RtsegError, match=r"^--target 'tensorrt': expected one of onnxruntime, opencv, openvino$"):
        export_onnx(model, tmp_path / "m.onnx", SIZE, target="tensorrt")
    with pytest.raises(RtsegError, match=r"^--int8 --target opencv: OpenCV DNN cannot run int8 \(QDQ\) graphs .*; "
                                         r"use --target onnxruntime or openvino$"):
        rtseg.export("enet-camvid", tmp_path / "m.onnx", int8=True, calibrate="camvid:train:2", target="opencv")
    with pytest.raises(RtsegError, match="--target opencv is for ONNX graphs"):
        rtseg.export("enet-camvid", tmp_path / "m.pt", format="torchscript", target="opencv")


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
    # Mul into HardSwish(s) and returned (N, C, 1, 1) (single-op graphs against ONNX Runtime;
    # docs/deployment_runtimes.md).
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


@pytest.mark.slow
def test_executorch_programs_are_checked_in_executorch(enet_ckpt_bn, tiny_camvid, tmp_path):
    pytest.importorskip("executorch")
    from rtseg.backends import BuildOptions, get_backend

    # One int8 export (the float32 program is built and checked per backend in tests/backends,
    # and each lowering costs about 30 s on 2 cores): its parity, metadata and the file alone.
    out = tmp_path / "enet_int8.pte"
    q = rtseg.export(enet_ckpt_bn, out, format="executorch", int8=True, calibrate="camvid:train:3",
                     data_root=tiny_camvid)
    assert q["backend"] == "executorch-int8" and q["int8"]["calibration"] == "camvid:train:3"
    assert q["int8"]["parity_on_calibration_frames"]["inputs"] == 3
    assert json.loads((tmp_path / "enet_int8.pte.json").read_text())["metadata"]["rtseg_classes"]["names"] == list(CAMVID.names)
    run = get_backend("executorch-int8").file_runner(out, BuildOptions())
    assert tuple(run(torch.zeros(1, 3, 24, 32)).shape) == (1, 11, 24, 32)  # the file runs as it is
