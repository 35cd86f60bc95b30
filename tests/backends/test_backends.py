"""rtseg.backends: the registry, parity of every backend with float PyTorch on real street frames,
the auto rule, and exported .onnx files run as they are."""

from __future__ import annotations

import pytest
import torch

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
from rtseg.datasets.transforms import normalize
from rtseg.errors import RtsegError
from rtseg.runtime import class_map
from rtseg.weights import load_weights

#: Compiling and lowering backends cost 20-60 s each on 2 cores: the slow suite runs them.
SLOW = {"torch-compile", "torch-bf16", "torch-int8", "executorch", "executorch-int8", "litert", "litert-int8", "ncnn"}


#: Least share of pixels whose class agrees with float PyTorch, by the backend's precision
#: (bf16 keeps 8 bits of mantissa: 99.62-99.88% measured for ENet; int8 98.4-99.5%).
AGREEMENT = {"float32": 0.999, "bfloat16": 0.99, "int8": 0.97}


def _params():
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in list_backends()]


def test_the_registry_names_every_backend_once_with_what_it_needs():
    names = list_backends()
    assert names[0] == "torch" and len(names) == len(set(names))
    assert {"onnxruntime-int8", "openvino-int8", "executorch-int8", "litert-int8"} <= set(names)
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


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in list_backends() if get_backend(n).file_format and get_backend(n).precision == "float32"])
def test_a_program_per_shape_agrees_with_eager_pytorch(name):
    """The runtimes with their own program (one static shape each) build one per input shape met,
    batches included; ERFNet has padded transposed convolutions (LiteRT rewrites them)."""
    from conftest import trained_like

    if get_backend(name).unavailable():
        pytest.skip(get_backend(name).unavailable())
    model = trained_like("erfnet", num_classes=5).eval()
    run = build_runner(model, name, options=BuildOptions(threads=2))
    for shape in ((1, 3, 32, 48), (2, 3, 48, 32)):
        x = torch.randn(shape)
        with torch.no_grad():
            expected = model(x)
        torch.testing.assert_close(run(x), expected, atol=1e-3, rtol=1e-3)


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
