"""Backends: the ways rtseg runs a trained network, behind one registry (as the models are).

A backend turns loaded weights into a runner, ``(N, 3, H, W)`` float in, ``(N, C, H, W)`` logits
out (:mod:`rtseg.backends.base`). ``--backend NAME`` in ``rtseg predict``, ``eval``, ``video``,
``serve`` and ``bench``, and ``backend=`` in :func:`rtseg.load_model`, :func:`rtseg.evaluate`,
:func:`rtseg.predict` and :func:`rtseg.process_video`, all go through :func:`build_runner`, so
``rtseg eval --backend X`` scores exactly what the other commands run for X.

============================  =========================================================
``torch``                     eager PyTorch, BN folded, channels-last
``torch-compile``             inductor, weights frozen; compiles per input size
``torch-bf16``                the same in bfloat16 (AVX512-BF16 / AMX)
``torch-int8``                PT2E static int8 (oneDNN), calibrated
``onnxruntime``               ONNX Runtime on the ONNX export
``onnxruntime-int8``          ONNX Runtime on the int8 (QDQ) export
``opencv``                    OpenCV DNN on its graph form
``openvino``                  OpenVINO, float32, on its graph form
``openvino-int8``             OpenVINO on the int8 (QDQ) export: VNNI / AMX kernels
============================  =========================================================

``auto`` (:func:`choose`) picks one from this CPU, what is installed and the amount of work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from rtseg.backends import onnxruntime, opencv, openvino
from rtseg.backends.base import Backend, BackendUnavailable, BuildOptions, PerShape, Requirements, Runner
from rtseg.backends.pytorch import Torch, TorchBf16, TorchCompile
from rtseg.backends.torch_int8 import TorchInt8
from rtseg.errors import RtsegError

__all__ = ["AUTO", "Backend", "BackendUnavailable", "BuildOptions", "Choice", "PerShape", "Requirements",
           "Runner", "available_backends", "build_runner", "choose", "default_calibration", "file_backend_runtime",
           "file_runner", "get_backend", "list_backends"]

_REGISTRY: dict[str, Backend] = {b.name: b for b in (
    Torch(), TorchCompile(), TorchBf16(), TorchInt8(), *onnxruntime.BACKENDS, *opencv.BACKENDS, *openvino.BACKENDS)}

#: The name that asks :func:`choose` to pick.
AUTO = "auto"


def list_backends() -> list[str]:
    """Every backend's name, in the registry's order (PyTorch first, then the graph runtimes)."""
    return list(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The backend called ``name``; a one-line error naming ``--backend`` and the choices."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RtsegError(f"--backend {name!r}: expected auto or one of {', '.join(_REGISTRY)}") from None


def available_backends() -> list[str]:
    """The backends that can run on this machine (packages installed, CPU instructions present)."""
    return [name for name, b in _REGISTRY.items() if b.unavailable() is None]


@dataclass(frozen=True)
class Choice:
    """What :func:`choose` picked and why (printed by the commands)."""

    backend: str
    reason: str


def choose(workload: str = "stream", onnx_file: str | None = None, int8_ready: bool = True) -> Choice:
    """The backend ``auto`` runs: the fastest measured on this CPU kind among what is installed,
    for this amount of work.

    ``workload``: ``"image"`` (a few photos: building a graph or compiling costs more than it
    saves, 15-40 s against tens of milliseconds a frame) or ``"stream"`` (a video, a server, a
    folder of many frames). ``onnx_file``: an exported file runs in ONNX Runtime as it is.
    ``int8_ready``: calibration frames are at hand (the shipped models carry theirs).

    The rule, from the measured tables (docs/deployment.md, ENet at 360x480, 2 threads): with
    VNNI or AMX, OpenVINO's int8 is fastest (13.8 ms on an AVX512-VNNI EPYC, 13.9 on an AMX Xeon;
    1.96x and 1.76x the compiled PyTorch-ENet peer); on AVX2 alone OpenVINO float32 (1.54x the
    peer); without OpenVINO, PyTorch compiled in bfloat16 where the CPU has it (14.3 ms on AMX),
    else compiled float32."""
    from rtseg.runtime import cpu_flags

    if onnx_file is not None:
        return Choice("onnxruntime", f"{onnx_file} is an exported graph: ONNX Runtime runs it as it is")
    if workload not in ("image", "stream"):
        raise RtsegError(f"workload {workload!r}: expected image or stream")
    if workload == "image":
        return Choice("torch", "a few images: eager PyTorch starts at once (compiling or exporting would cost "
                               "more than it saves)")
    flags = cpu_flags()
    ok = set(available_backends())
    if int8_ready and "openvino-int8" in ok and (flags["avx512_vnni"] or flags["avx_vnni"] or flags["amx_int8"]):
        return Choice("openvino-int8", "this CPU has int8 dot products (VNNI/AMX) and OpenVINO is installed: "
                                       "its int8 is the fastest measured there")
    if "openvino" in ok and flags["avx2"] and not flags["avx512_bf16"]:
        return Choice("openvino", "OpenVINO is installed and this CPU has AVX2 without native bf16: OpenVINO "
                                  "float32 is the fastest measured there")
    if "torch-bf16" in ok:
        return Choice("torch-bf16", "this CPU computes bfloat16 natively: PyTorch compiled in bf16")
    return Choice("torch-compile", "PyTorch compiled (inductor): faster than eager after the first frame")


def build_runner(model: nn.Module, backend: str, *, size: tuple[int, int] | None = None, batch: int = 1,
                 options: BuildOptions | None = None) -> Runner:
    """``backend``'s runner for the PyTorch ``model`` (eval mode, float32). Static-size backends
    build on the first frame of each input shape (:class:`PerShape`); ``size`` is then unused.
    Refuses, in one line naming the backend, where it cannot run."""
    b = get_backend(backend)
    options = options or BuildOptions()
    if options.device.type == "cpu" or b.onnx_runtime is not None:  # bf16 is native on GPUs
        b.check()
    if b.requires.calibration and not options.calibration:
        raise BackendUnavailable(f"--backend {backend}: int8 needs calibration frames (--calibrate "
                                 "DATASET:SPLIT:N, or a shipped model, which carries its own)")
    return b.build_runner(model.eval(), tuple(size) if size else (0, 0), batch, options)


def file_backend_runtime(path: str, backend: str) -> str:
    """The runtime that runs the exported ``.onnx`` file ``path`` for ``backend``: a graph backend
    without -int8 (the file's own precision decides); a one-line refusal for the others."""
    b = get_backend(backend)
    if b.onnx_runtime is None or getattr(b, "int8", False):
        runtimes = [n for n, x in _REGISTRY.items() if x.onnx_runtime and not getattr(x, "int8", False)]
        raise BackendUnavailable(f"--backend {backend}: {path} is an exported ONNX graph, run as it is by "
                                 f"{', '.join(runtimes)} (its precision is the file's); give a checkpoint or a "
                                 f"shipped model for {backend}")
    b.check()
    return b.onnx_runtime


def file_runner(path: str, backend: str, options: BuildOptions | None = None) -> Runner:
    """An exported ``.onnx`` file run as it is by ``backend`` (:func:`file_backend_runtime`)."""
    file_backend_runtime(path, backend)
    return get_backend(backend).file_runner(path, options or BuildOptions())


def default_calibration(count: int = 8) -> list[np.ndarray]:
    """The street frames the package carries for int8 calibration (CamVid val, sequence 0016E5):
    what the shipped models calibrate on when no ``--calibrate`` is given."""
    from importlib.resources import files

    from PIL import Image

    folder = files("rtseg") / "shipped" / "calibration"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".jpg"))[:count]
    frames = []
    for name in names:
        with Image.open(folder / name) as im:
            frames.append(np.array(im.convert("RGB")))
    return frames
