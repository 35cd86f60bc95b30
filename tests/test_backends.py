"""The backend layer (rtseg.backends): the registry, parity of every backend with float PyTorch on
real street frames, one-line refusals, the auto rule, and eval scoring what predict runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.profiler import profile

import rtseg
from rtseg.backends import (
    BackendUnavailable,
    BuildOptions,
    build_runner,
    choose,
    default_calibration,
    file_runner,
    get_backend,
    list_backends,
)
from rtseg.backends.pytorch import compile_for_inference
from rtseg.datasets.transforms import normalize
from rtseg.errors import RtsegError
from rtseg.runtime import class_map
from rtseg.weights import load_weights

#: Compiling backends cost 20-60 s each on 2 cores: the slow suite runs them.
SLOW = {"torch-compile", "torch-bf16", "torch-int8"}
#: Least share of pixels whose class agrees with float PyTorch, by the backend's precision
#: (bf16 keeps 8 bits of mantissa: 99.62-99.88% measured for ENet; int8 98.4-99.5%).
AGREEMENT = {"float32": 0.999, "bfloat16": 0.99, "int8": 0.97}


def _params():
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in list_backends()]


def test_the_registry_names_every_backend_once_with_what_it_needs():
    names = list_backends()
    assert names[0] == "torch" and len(names) == len(set(names)) == 9
    for name in names:
        b = get_backend(name)
        assert b.name == name and b.summary
        assert b.requires.calibration == name.endswith("-int8") == (b.precision == "int8")
        assert (b.onnx_runtime is not None) == (name.split("-")[0] in ("onnxruntime", "opencv", "openvino"))
    with pytest.raises(RtsegError, match="--backend 'tensorrt': expected auto or one of torch, "):
        get_backend("tensorrt")


@pytest.fixture(scope="module")
def street():
    """The shipped ENet and two real street frames (the package's calibration frames, 360x480)."""
    loaded = load_weights("enet-camvid")
    frames = default_calibration(8)[::4]
    x = torch.cat([normalize(torch.from_numpy(f).permute(2, 0, 1)[None], loaded.mean, loaded.std) for f in frames])
    with torch.no_grad():
        reference = class_map(loaded.model.eval()(x))
    return loaded, x, reference


@pytest.mark.parametrize("name", _params())
def test_every_backend_agrees_with_float_pytorch_on_real_frames(name, street):
    b = get_backend(name)
    if b.unavailable():
        pytest.skip(b.unavailable())
    loaded, x, reference = street
    options = BuildOptions(threads=2, calibration=default_calibration(), mean=loaded.mean, std=loaded.std)
    run = build_runner(loaded.model, name, options=options)
    pred = torch.cat([class_map(run(x[i:i + 1]).float()) for i in range(len(x))])
    agreement = float((pred == reference).float().mean())
    assert agreement >= AGREEMENT[b.precision], (name, agreement)


def test_refusals_are_one_line_naming_the_backend(monkeypatch):
    import importlib.util

    import rtseg.backends.base as base
    import rtseg.runtime

    real = importlib.util.find_spec
    monkeypatch.setattr(base, "find_spec", lambda m: None if m == "openvino" else real(m))
    why = get_backend("openvino-int8").unavailable()
    assert why.startswith("--backend openvino-int8: openvino is not installed (pip install") and "\n" not in why
    model = torch.nn.Conv2d(3, 2, 1)
    with pytest.raises(BackendUnavailable, match="^--backend openvino: openvino is not installed"):
        build_runner(model, "openvino")
    monkeypatch.setattr(rtseg.runtime, "cpu_flags", lambda: dict.fromkeys(rtseg.runtime.CPU_FLAGS, False))
    why = get_backend("torch-bf16").unavailable()
    assert why.startswith("--backend torch-bf16: this CPU has none of avx512_bf16, amx_bf16")
    with pytest.raises(BackendUnavailable, match="int8 needs calibration frames"):
        monkeypatch.setattr(rtseg.runtime, "cpu_flags", lambda: dict.fromkeys(rtseg.runtime.CPU_FLAGS, True))
        build_runner(model, "onnxruntime-int8", options=BuildOptions(calibration=None))


@pytest.mark.parametrize("flags, installed, expected", [
    ({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, {"openvino"}, "openvino-int8"),   # EPYC with VNNI/BF16
    ({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"}, {"openvino"}, "openvino-int8"),
    ({"avx2"}, {"openvino"}, "openvino"),                                                  # AVX2 only
    ({"avx2", "avx512_bf16"}, set(), "torch-bf16"),                                          # no OpenVINO
    ({"avx2"}, set(), "torch-compile"),
])
def test_auto_picks_by_cpu_installed_runtimes_and_the_work(monkeypatch, flags, installed, expected):
    import rtseg.backends as backends
    import rtseg.runtime

    monkeypatch.setattr(rtseg.runtime, "cpu_flags", lambda: {f: f in flags for f in rtseg.runtime.CPU_FLAGS})
    runnable = {"torch", "torch-compile", "onnxruntime", "onnxruntime-int8", "opencv"}
    runnable |= {"openvino", "openvino-int8"} if "openvino" in installed else set()
    runnable |= {"torch-bf16"} if "avx512_bf16" in flags else set()
    monkeypatch.setattr(backends.Backend, "unavailable", lambda self: None if self.name in runnable else "no")
    assert choose("stream").backend == expected  # a camera or a server: unbounded, any build pays
    assert choose("stream", frames=50_000).backend == expected
    # A short clip: no build pays for itself (10 s for a graph, 30 s for compiling at 10 ms a frame) ...
    short = choose("stream", frames=171)
    assert short.backend == "torch" and "171 frame(s)" in short.reason
    # ... unless the graph is shipped or cached: then only loading it counts (0.5 s).
    ready = choose("stream", frames=171, ready=lambda name: name == expected)
    assert ready.backend == expected and "ready" in ready.reason
    assert choose("image", ready=lambda name: True).backend == "torch"  # one photo: start at once
    assert choose("stream", onnx_file="m.onnx").backend == "onnxruntime"
    assert choose("stream", device="cuda").backend == "torch"  # the other backends run on the CPU
    assert get_backend("torch-int8").cpu_only and get_backend("openvino").cpu_only
    assert not get_backend("torch-bf16").cpu_only
    with pytest.raises(RtsegError, match="workload 'batch'"):
        choose("batch")


def test_an_onnx_file_runs_as_it_is_and_int8_backends_refuse_it(tmp_path):
    with pytest.raises(BackendUnavailable, match="m.onnx is an exported ONNX graph, run as it is by "
                                                 "onnxruntime, opencv, openvino"):
        file_runner(str(tmp_path / "m.onnx"), "openvino-int8")
    with pytest.raises(BackendUnavailable, match="--backend torch-compile"):
        rtseg.load_model(str(tmp_path / "m.onnx"), backend="torch-compile")


def test_eval_scores_exactly_what_predict_runs(enet_ckpt_bn, tiny_camvid):
    from rtseg.datasets import build_dataset
    from rtseg.metrics import ConfusionMatrix

    for backend in ("torch", "onnxruntime"):
        r = rtseg.evaluate(str(enet_ckpt_bn), "camvid", "val", data_root=tiny_camvid, backend=backend,
                           progress=False, size=[24, 32])
        assert r["backend"] == backend
        seg = rtseg.load_model(str(enet_ckpt_bn), device="cpu", backend=backend)
        data = build_dataset("camvid", "val", tiny_camvid)
        cm = ConfusionMatrix(11)
        for i in range(len(data)):
            image, label = data.load(i)
            cm.update(torch.from_numpy(seg.predict(image)[None]).long(), torch.from_numpy(label[None]).long())
        assert r["miou"] == pytest.approx(cm.compute()["miou"], abs=1e-9), backend


def test_the_older_flags_still_work_and_say_they_are_deprecated(capsys, tmp_path):
    from rtseg.cli import main

    assert main(["predict", "samples/camvid/0016E5_07959.jpg", "--out", str(tmp_path / "a"), "--runtime",
                 "onnxruntime"]) == 0
    captured = capsys.readouterr()
    assert "--runtime onnxruntime is deprecated" in captured.err and "onnxruntime" in captured.out
    assert main(["predict", "samples/camvid/0016E5_07959.jpg", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("backend torch (auto: 1 frame(s): eager PyTorch starts at once")
    assert main(["predict", "samples/camvid/0016E5_07959.jpg", "--out", str(tmp_path / "c"), "--compile",
                 "--backend", "torch"]) == 2
    assert "--compile is the older spelling of --backend: give --backend torch alone" in capsys.readouterr().err


def test_tta_runs_on_every_kind_of_backend(enet_ckpt_bn):
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    for backend in ("torch", "onnxruntime"):
        plain = rtseg.load_model(str(enet_ckpt_bn), device="cpu", backend=backend)
        flip = rtseg.load_model(str(enet_ckpt_bn), device="cpu", backend=backend, tta="flip")
        a, b = plain.predict_logits([image]), flip.predict_logits([image])
        mirrored = plain.predict_logits([image[:, ::-1].copy()]).flip(-1)
        expected = ((a.softmax(1) + mirrored.softmax(1)) / 2).log()
        torch.testing.assert_close(b, expected, atol=1e-4, rtol=1e-4)


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


def _convolution_kernels(fn, x) -> set[str]:
    with profile() as prof:
        fn(x)
    return {e.name for e in prof.events() if "conv" in e.name.lower()}


def test_compile_for_inference_freezes_weights_into_onednn_convolutions():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=2, dilation=2)).eval()
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 24, 32).contiguous(memory_format=torch.channels_last)
    compiled = compile_for_inference(net)
    assert compiled._orig_mod is net and len(list(compiled.parameters())) == 4
    with torch.inference_mode():
        expected = net(x)
        assert torch.allclose(compiled(x), expected, atol=1e-5)  # the first call compiles
        kernels = _convolution_kernels(compiled, x)
    # Unfrozen (torch.compile(options={"freezing": True}) on torch 2.14) these ran aten's
    # reference kernels, thnn_conv2d / slow_conv_dilated2d.
    assert any(k.startswith("mkldnn::_convolution_pointwise") for k in kernels), kernels
    assert not any("slow_conv" in k or "thnn" in k for k in kernels), kernels


def test_bfloat16_inference_gives_float32_logits_close_to_float():
    from rtseg.backends.pytorch import Bfloat16Inference

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(2, 3, 16, 20)
    with torch.inference_mode():
        expected = net(x)
        got = Bfloat16Inference(net)(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert next(net.parameters()).dtype == torch.bfloat16
    # bf16 keeps 8 mantissa bits: about 0.4% relative error a value.
    assert (got - expected).abs().max() <= 0.02 * expected.abs().max()


def test_a_shape_being_built_does_not_hold_up_shapes_already_built():
    import threading
    import time

    from rtseg.backends import PerShape

    gate = threading.Event()
    built = []

    def build(hw, n):
        built.append((n, *hw))
        if hw == (8, 8):
            gate.wait(60)  # a slow build (an export, a compile), until the test lets it finish
        return lambda x: x * 2

    runner = PerShape(build)
    fast = torch.ones(1, 3, 4, 4)
    assert torch.equal(runner(fast), fast * 2)
    slow = threading.Thread(target=runner, args=(torch.ones(1, 3, 8, 8),))
    slow.start()
    while (1, 8, 8) not in built:
        time.sleep(0.01)
    served = threading.Thread(target=runner, args=(fast,))
    served.start()
    served.join(timeout=30)
    assert not served.is_alive() and not gate.is_set()  # served while (8, 8) was still building
    gate.set()
    slow.join()
    runner(torch.ones(1, 3, 8, 8))
    assert built == [(1, 4, 4), (1, 8, 8)]  # each shape built once
