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
``executorch``                ExecuTorch on the XNNPACK delegate (phones, boards)
``executorch-int8``           the same, PT2E int8 with the XNNPACK quantiser, calibrated
``litert``                    LiteRT (TFLite) on XNNPACK (Android, ARM boards)
``litert-int8``               the same, ai-edge-quantizer int8, calibrated
``ncnn``                      NCNN (phones, boards), converted by pnnx, float32
============================  =========================================================

``auto`` (:func:`choose`) picks one from this CPU, what is installed and the amount of work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rtseg.backends import executorch, litert, ncnn, onnxruntime, opencv, openvino
from rtseg.backends.base import Backend, BackendUnavailable, BuildOptions, PerShape, Requirements, Runner
from rtseg.backends.pytorch import Torch, TorchBf16, TorchCompile
from rtseg.backends.torch_int8 import TorchInt8
from rtseg.errors import RtsegError

__all__ = ["AUTO", "Backend", "BackendUnavailable", "BuildOptions", "Choice", "PerShape", "Requirements",
           "Runner", "available_backends", "build_runner", "choose", "default_calibration", "file_backend_runtime",
           "file_runner", "get_backend", "list_backends", "program_formats"]

_REGISTRY: dict[str, Backend] = {b.name: b for b in (
    Torch(), TorchCompile(), TorchBf16(), TorchInt8(), *onnxruntime.BACKENDS, *opencv.BACKENDS, *openvino.BACKENDS,
    *executorch.BACKENDS, *litert.BACKENDS, *ncnn.BACKENDS)}

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


#: What building a runner costs before the first frame on 2 cores (export + int8 calibration of
#: ENet: 8-12 s; inductor compiling: 15-40 s), and about what a faster backend saves a frame over
#: eager PyTorch (ENet at 360x480: 27-28 ms eager against 13.5-14.3 for the fastest, measured on
#: AVX512-VNNI and AMX CPUs): a build pays off only over more frames than ``BUILD_S / SAVING_S``
#: (a graph: from 1001 frames; compiling: from 3001).
BUILD_S = {"graph": 10.0, "compile": 30.0}
SAVING_S = 0.010
#: Loading a graph that is ready (shipped or cached) into its runtime: OpenVINO compiles its
#: kernels for the shape, well under a second (a ready graph pays from 51 frames).
LOAD_S = 0.5


def _ranked() -> list[tuple[str, str]]:
    """The backends installed here, fastest first for this CPU kind, each with why (the measured
    tables: docs/deployment.md, ENet at 360x480, 2 threads)."""
    from rtseg.runtime import cpu_flags

    flags = cpu_flags()
    # Only the candidates are checked (torch-int8's check imports torchao: seconds, and a warning).
    ok = {n for n in ("openvino-int8", "torch-bf16", "openvino") if get_backend(n).unavailable() is None}
    ranked = []
    if "openvino-int8" in ok and (flags["avx512_vnni"] or flags["avx_vnni"] or flags["amx_int8"]):
        ranked.append(("openvino-int8", "this CPU has int8 dot products (VNNI/AMX): OpenVINO's int8 is the fastest "
                                        "measured on an AVX512-VNNI EPYC (13.5-13.7 ms against torch-bf16's 16.7-18.3) "
                                        "and level with torch-bf16 on an AMX Xeon (13.9-14.9 against 13.6-14.3) "
                                        "without compiling"))
    if "torch-bf16" in ok:
        ranked.append(("torch-bf16", "this CPU computes bfloat16 natively: PyTorch compiled in bf16"))
    if "openvino" in ok and flags["avx2"]:
        ranked.append(("openvino", "OpenVINO float32: the fastest measured on a CPU with AVX2 alone"))
    ranked.append(("torch-compile", "PyTorch compiled (inductor): faster than eager after the first frame"))
    return ranked


def build_cost(backend: str) -> float:
    """Seconds building ``backend``'s runner costs before the first frame (0 for eager PyTorch)."""
    if backend == "torch":
        return 0.0
    return BUILD_S["graph"] if get_backend(backend).onnx_runtime else BUILD_S["compile"]


def choose(workload: str = "stream", onnx_file: str | None = None, frames: int | None = None,
           ready=None, device: str = "cpu") -> Choice:
    """The backend ``auto`` runs: the fastest measured on this CPU kind among what is installed,
    unless building it would cost more than it saves over the work at hand.

    ``workload``: ``"image"`` (a few photos) or ``"stream"`` (a video, a server, many frames).
    ``frames``: how many frames the job has (None: unbounded, a camera or a server).
    ``ready(backend)``: whether that backend's runner is free to build (a graph the package
    ships or the cache holds), so it costs nothing to start. ``onnx_file``: an exported file
    runs in ONNX Runtime as it is.

    The rule: walk the backends fastest first (:func:`_ranked`); take the first that is ready,
    or whose build (:data:`BUILD_S`: 10 s for a graph, 30 s for compiling) is paid back over
    ``frames`` at :data:`SAVING_S` a frame (a ready graph still costs :data:`LOAD_S` to load);
    else eager ``torch``, which starts at once. On a GPU (``device`` "cuda"): ``torch``, the
    other backends being CPU ones."""
    if onnx_file is not None:
        return Choice("onnxruntime", f"{onnx_file} is an exported graph: ONNX Runtime runs it as it is")
    if str(device).startswith("cuda"):
        return Choice("torch", "a CUDA device: PyTorch runs the network there (the other backends are CPU ones)")
    if workload not in ("image", "stream"):
        raise RtsegError(f"workload {workload!r}: expected image or stream")
    if workload == "image" and frames is None:
        frames = 1
    for name, reason in _ranked():
        if ready is not None and ready(name):
            if frames is None or frames * SAVING_S > LOAD_S:
                return Choice(name, f"{reason}; its graph is ready (shipped or cached)")
            continue
        if frames is None or frames * SAVING_S > build_cost(name):
            return Choice(name, f"{reason}; built on the first frame (about {build_cost(name):.0f} s), "
                                f"which pays over {'a stream' if frames is None else f'{frames} frames'}")
    return Choice("torch", f"{frames} frame(s): eager PyTorch starts at once (building a faster runner would cost "
                           "more than it saves)")


def build_runner(model: nn.Module, backend: str, *, size: tuple[int, int] | None = None, batch: int = 1,
                 options: BuildOptions | None = None) -> Runner:
    """``backend``'s runner for the PyTorch ``model`` (eval mode, float32). Static-size backends
    build on the first frame of each input shape (:class:`PerShape`); ``size`` is then unused.
    Refuses, in one line naming the backend, where it cannot run."""
    b = get_backend(backend)
    options = options or BuildOptions()
    if b.cpu_only:
        options.device = torch.device("cpu")
        model = model.cpu()
    if options.device.type == "cpu":  # the CPU's instruction sets (bf16 is native on GPUs)
        b.check()
    if b.requires.calibration and not options.calibration:
        raise BackendUnavailable(f"--backend {backend}: int8 needs calibration frames (--calibrate "
                                 "DATASET:SPLIT:N, or a shipped model, which carries its own)")
    return b.build_runner(model.eval(), tuple(size) if size else (0, 0), batch, options)


def program_formats() -> dict[str, str]:
    """``rtseg export --format`` names written by a backend's own program builder -> that
    backend (float; ``--int8`` takes NAME-int8)."""
    return {b.file_format: name for name, b in _REGISTRY.items()
            if b.file_format and not name.endswith("-int8")}


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


class CalibrationFrames(list):
    """(H, W, 3) uint8 frames with ``key``: a digest of the files they were decoded from, which a
    graph's cache key uses instead of the pixels (JPEG decoders may differ by a level here and
    there between releases; the files do not)."""

    key: str = ""


def default_calibration(count: int = 8) -> CalibrationFrames:
    """The street frames the package carries for int8 calibration (CamVid val, sequence 0016E5):
    what the shipped models calibrate on when no ``--calibrate`` is given."""
    import hashlib
    from importlib.resources import files

    from PIL import Image

    folder = files("rtseg") / "shipped" / "calibration"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".jpg"))[:count]
    frames, digest = CalibrationFrames(), hashlib.sha256()
    for name in names:
        data = (folder / name).read_bytes()
        digest.update(data)
        with Image.open(folder / name) as im:
            frames.append(np.array(im.convert("RGB")))
    frames.key = digest.hexdigest()
    return frames
