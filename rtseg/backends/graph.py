"""What the ONNX-graph backends share, written once: export the network in the runtime's graph
form (:func:`rtseg.deploy.export.export_onnx`, parity-checked in that runtime), quantise it to
int8 QDQ on calibration frames for the ``-int8`` backends
(:func:`rtseg.deploy.quantize.quantize_int8`), and load it in the runtime
(:func:`rtseg.onnx_runtimes.load_runner`) for one static input shape."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from rtseg.backends.base import Backend, BuildOptions, PerShape, Requirements, Runner, calibration_tensors
from rtseg.onnx_runtimes import INSTALL, load_runner

EXPORT = ("onnxscript", "pip install 'rtseg[export]'")


def export_for(model, size: tuple[int, int], runtime: str, int8: bool, options: BuildOptions, folder: Path) -> Path:
    """The ONNX file a graph backend runs: ``model`` exported for ``runtime`` at ``size``, then
    (``int8``) quantised on the calibration frames with the model's float modules kept float, as
    ``rtseg export --int8`` ships it."""
    from rtseg.deploy.export import export_onnx

    path = folder / "model.onnx"
    export_onnx(model, path, size, metadata=options.metadata, target=runtime)
    if not int8:
        return path
    from rtseg.deploy.quantize import quantize_int8

    keep = list(options.keep_float) or list(getattr(model, "int8_keep_float", ()))
    quantize_int8(path, folder / "int8.onnx", calibration_tensors(options, size), keep_float=keep)
    return folder / "int8.onnx"


def graph_key(model, size: tuple[int, int], runtime: str, int8: bool, options: BuildOptions) -> str:
    """What a built graph depends on: the weights, the architecture, the size, the runtime's graph
    form, int8 and its calibration frames, the rtseg and runtime versions."""
    import hashlib
    import json

    from rtseg._version import __version__
    from rtseg.onnx_runtimes import version

    h = hashlib.sha256(json.dumps([type(model).__name__, list(size), runtime, int8, __version__, version(runtime),
                                   list(options.mean), list(options.std), list(options.keep_float),
                                   options.metadata or {}], sort_keys=True, default=str).encode())
    for key, t in model.state_dict().items():
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    if int8:
        for frame in options.calibration or []:
            h.update(np.ascontiguousarray(frame).tobytes())
    return h.hexdigest()[:24]


def cached_graph(model, size: tuple[int, int], runtime: str, int8: bool, options: BuildOptions) -> Path:
    """The graph file for these weights and this setting, built once and kept in
    ``rtseg``'s cache (``$RTSEG_CACHE/backends``): exporting and calibrating cost 10-30 s on
    2 cores, reading the file back well under one."""
    import shutil

    from rtseg.io import atomic_path, cache_root

    path = cache_root() / "backends" / f"{graph_key(model, size, runtime, int8, options)}-{runtime}{'-int8' if int8 else ''}.onnx"
    if path.is_file():
        return path
    with tempfile.TemporaryDirectory(prefix="rtseg-backend-") as tmp:
        built = export_for(model, size, runtime, int8, options, Path(tmp))
        with atomic_path(path) as out:
            shutil.copyfile(built, out)
    return path


def tensor_runner(run) -> Runner:
    """A numpy runner ((N, 3, H, W) float32 -> logits) as a tensor runner."""
    def call(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(run(np.ascontiguousarray(x.detach().cpu().float().numpy()))))

    return call


class GraphBackend(Backend):
    """A runtime running the network exported to ONNX (from PyTorch weights: exported, and
    quantised for ``-int8``, on the first frame of each input shape)."""

    int8: bool = False

    def build_runner(self, model, size, batch, options: BuildOptions) -> Runner:
        runtime = self.onnx_runtime

        def build(hw, n):
            path = cached_graph(model, hw, runtime, self.int8, options)
            return tensor_runner(load_runner(path, runtime, options.threads, input_shape=(n, 3, *hw)))

        return PerShape(build)

    def file_runner(self, path: str | Path, options: BuildOptions) -> Runner:
        """An ``.onnx`` file run as it is (float or int8: the file's precision), whatever its
        metadata, for each input shape met (OpenVINO plans its kernels for one static shape)."""
        runtime = self.onnx_runtime
        return PerShape(lambda hw, n: tensor_runner(load_runner(path, runtime, options.threads,
                                                                input_shape=(n, 3, *hw))))


def runtime_requirements(runtime: str, module: str, int8: bool = False, **extra) -> Requirements:
    packages = ((module, INSTALL[runtime]), EXPORT) + ((("onnxruntime", INSTALL["onnxruntime"]),) if int8 else ())
    return Requirements(packages=packages, calibration=int8, static_size=True, **extra)


def graph_backends(runtime: str, module: str, summary: str, int8_summary: str | None = None) -> list[GraphBackend]:
    """The backends of one runtime: float, and int8 when ``int8_summary`` is given."""
    made = []
    for int8, text in ((False, summary), (True, int8_summary)):
        if text is None:
            continue
        b = GraphBackend()
        b.name, b.summary, b.onnx_runtime, b.int8 = runtime + ("-int8" if int8 else ""), text, runtime, int8
        b.requires = runtime_requirements(runtime, module, int8=int8)
        made.append(b)
    return made
