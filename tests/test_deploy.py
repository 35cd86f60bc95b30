"""Export parity for every model, BN folding, int8, and the bench JSON."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import rtseg
from conftest import trained_like
from rtseg import list_models
from rtseg.checkpoint import make_checkpoint, save_checkpoint
from rtseg.datasets.camvid import CLASSES as CAMVID
from rtseg.deploy.export import export_onnx, export_torchscript
from rtseg.errors import RtsegError
from rtseg.models import create_model
from rtseg.models.fold import PReLUAsMax, count_batchnorms, fold_batchnorm, prelu_as_max

SIZES = {"bisenetv2": (45, 61), "dabnet": (45, 61), "ddrnet23_slim": (45, 61), "edanet": (45, 61), "pidnet_s": (45, 61), "enet": (45, 61), "erfnet": (45, 61), "fcn8s_mobilenetv3": (45, 61), "fcn8s": (40, 56), "icnet": (45, 61),
         "pspnet50": (45, 61)}


def test_fold_batchnorm_keeps_outputs():
    model = trained_like("enet")
    folded = fold_batchnorm(model)
    assert count_batchnorms(folded) < count_batchnorms(model) // 10
    x = torch.randn(1, 3, 40, 48)
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-4, rtol=1e-4)


def test_prelu_as_max_is_exact_and_only_for_slopes_up_to_one():
    low = torch.nn.PReLU(4)  # per-channel slopes <= 1, negative ones included
    shared = torch.nn.PReLU(1)  # one slope for every channel
    high = torch.nn.PReLU(4)  # a slope above 1: max(x, a*x) would be wrong, must stay a PReLU
    with torch.no_grad():
        low.weight.copy_(torch.tensor([-0.5, 0.0, 0.25, 1.0]))
        shared.weight.fill_(0.1)
        high.weight.copy_(torch.tensor([0.5, 1.5, 0.2, 0.3]))
    model = torch.nn.Sequential(low, shared, high)
    x = torch.randn(2, 4, 5, 6)
    x[0, :, 0, 0] = 0.0
    with torch.no_grad():
        ref = model(x)
        rewritten = prelu_as_max(copy.deepcopy(model))
        assert [type(m) for m in rewritten] == [PReLUAsMax, PReLUAsMax, torch.nn.PReLU]
        assert torch.equal(rewritten(x), ref)


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
    with pytest.raises(RtsegError, match="--format 'tflite'"):
        rtseg.export(enet_ckpt_bn, tmp_path / "x.pt", format="tflite")
    no_size = tmp_path / "nosize.pt"
    save_checkpoint(make_checkpoint(create_model("enet", num_classes=11), "enet", {}, CAMVID, (0.5,) * 3,
                                    (0.5,) * 3), no_size)
    with pytest.raises(RtsegError, match="--size HxW is needed"):
        rtseg.export(no_size, tmp_path / "x.onnx")
    assert not list(tmp_path.glob("x.*"))


def test_export_default_size_is_the_checkpoints(enet_ckpt_bn, tmp_path):
    report = rtseg.export(enet_ckpt_bn, tmp_path / "m.pt", format="torchscript")
    assert report["size"] == [24, 32] and report["parity"]["pixel_agreement"] == 1.0


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_bench_json(backend, tmp_path):
    r = rtseg.benchmark("enet", size=(48, 64), backend=backend, threads=1, iters=3)
    for key in ("median_ms", "p90_ms", "fps", "params", "gflops", "peak_mem_mb", "e2e_median_ms"):
        assert r[key] > 0, key
    assert r["fps"] == pytest.approx(1000 / r["median_ms"], rel=0.01) and r["params"] == sum(p.numel() for p in create_model("enet", num_classes=11).parameters())
    assert r["machine"]["cores"] >= 1


@pytest.mark.slow  # compiles ENet: 30-190 s on 2 cores
def test_bench_torch_bf16_runs_where_the_cpu_has_bf16_and_is_refused_elsewhere():
    from rtseg.runtime import cpu_has_native_bf16

    if not cpu_has_native_bf16():
        with pytest.raises(RtsegError, match="--backend torch-bf16: this CPU has no native bfloat16"):
            rtseg.benchmark("enet", size=(32, 48), backend="torch-bf16", threads=1, iters=2)
        return
    r = rtseg.benchmark("enet", size=(32, 48), backend="torch-bf16", threads=1, iters=2)  # compiles: ~20 s
    assert r["backend"] == "torch-bf16" and r["median_ms"] > 0 and r["e2e_median_ms"] > 0


def test_bench_runs_in_fresh_processes(tmp_path):
    r = rtseg.benchmark("enet", size=(32, 48), threads=1, iters=2, runs=2, progress=False)
    assert r["runs"] == 2 and len(r["run_median_ms"]) == 2
    # The median of the runs' medians, and the extremes, from the runs themselves.
    assert r["median_ms"] == pytest.approx(float(np.median(r["run_median_ms"])), abs=0.01)
    assert (r["min_run_median_ms"], r["max_run_median_ms"]) == (min(r["run_median_ms"]), max(r["run_median_ms"]))
    with pytest.raises(RtsegError, match="--runs 0"):
        rtseg.benchmark("enet", runs=0)


def test_bench_of_an_onnx_export_times_the_file(enet_ckpt_bn, tmp_path):
    onnx_path = tmp_path / "m.onnx"
    rtseg.export(enet_ckpt_bn, onnx_path, size=(24, 32))
    r = rtseg.benchmark(weights=onnx_path, size=(24, 32), backend="onnxruntime", threads=1, iters=2)
    assert r["median_ms"] > 0 and r["model"] == "enet (onnx)" and r["params"] > 0
    with pytest.raises(RtsegError, match=r"runs with --backend onnxruntime\|opencv\|openvino only"):
        rtseg.benchmark(weights=onnx_path, size=(24, 32), backend="torch")
    with pytest.raises(RtsegError, match="bench it with --size 24x32"):
        rtseg.benchmark(weights=onnx_path, size=(48, 64), backend="onnxruntime")


_FAULTS_SCRIPT = """
import resource, sys, torch
from rtseg.inference import reuse_freed_memory
if sys.argv[1] == "1":
    assert reuse_freed_memory()
torch.set_num_threads(1)
model = torch.nn.Sequential(*[torch.nn.Conv2d(16, 16, 3, padding=1) for _ in range(4)]).eval()
x = torch.randn(1, 16, 256, 256)  # 4 MB activations: above glibc's default mmap threshold
with torch.no_grad():
    for _ in range(3):
        model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        model(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_reuse_freed_memory_stops_page_faults_on_every_forward_pass():
    def faults(flag: str) -> int:
        done = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, flag], capture_output=True, text=True, check=True)
        return int(done.stdout.strip().splitlines()[-1])

    default, reused = faults("0"), faults("1")
    assert default > 1000  # every forward pass page-faults its activations in again
    assert reused < default / 10


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
