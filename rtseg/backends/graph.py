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

from rtseg.backends.base import Backend, BuildOptions, ClassRunner, PerShape, Requirements, Runner, calibration_tensors
from rtseg.onnx_runtimes import INSTALL, load_class_runner, load_runner

EXPORT = ("onnxscript", "pip install 'rtseg[export]'")
#: Part of every graph's cache key: bump it when the export or the quantisation changes what
#: they write (rtseg.deploy.export, rtseg.deploy.portable, rtseg.deploy.quantize), so no cache or
#: shipped file of the old form is used again (then run make shipped-graphs).
GRAPH_FORMAT = 1


def export_for(model, size: tuple[int, int], runtime: str, int8: bool, options: BuildOptions, folder: Path) -> Path:
    """The ONNX file a graph backend runs: ``model`` exported for ``runtime`` at ``size``, then
    (``int8``) quantised on the calibration frames with the model's float modules kept float, as
    ``rtseg export --int8`` ships it."""
    from rtseg.deploy.export import export_onnx

    path = folder / "model.onnx"
    export_onnx(model, path, size, target=runtime)
    if not int8:
        return path
    from rtseg.deploy.quantize import quantize_int8

    keep = list(options.keep_float) or list(getattr(model, "int8_keep_float", ()))
    quantize_int8(path, folder / "int8.onnx", calibration_tensors(options, size), keep_float=keep)
    return folder / "int8.onnx"


def graph_key(model, size: tuple[int, int], runtime: str, int8: bool, options: BuildOptions) -> str:
    """What a built graph depends on: the weights, the architecture, the size, the runtime's graph
    form, int8 and its calibration frames, and the rtseg release that exported it (the file is
    ONNX: any release of the runtime reads it)."""
    import hashlib
    import json

    from rtseg._version import __version__

    h = hashlib.sha256(json.dumps([type(model).__name__, list(size), runtime, int8, __version__, GRAPH_FORMAT,
                                   list(options.mean), list(options.std), list(options.keep_float)]).encode())
    for key, t in model.state_dict().items():
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    if int8:
        if getattr(options.calibration, "key", ""):  # the package's frames: their files' digest
            h.update(options.calibration.key.encode())
        else:
            for frame in options.calibration or []:
                h.update(np.ascontiguousarray(frame).tobytes())
    return h.hexdigest()[:24]


def graph_name(model, size: tuple[int, int], runtime: str, int8: bool, options: BuildOptions) -> str:
    return f"{graph_key(model, size, runtime, int8, options)}-{runtime}{'-int8' if int8 else ''}.onnx"


def shipped_graphs() -> Path:
    """Where the package keeps the graphs it ships prebuilt (the shipped models at their size)."""
    from importlib.resources import files

    return Path(str(files("rtseg") / "shipped" / "graphs"))


def cached_graph(model, size: tuple[int, int], runtime: str, int8: bool, options: BuildOptions) -> Path:
    """The graph file for these weights and this setting: one the package ships (the shipped
    models at their training size, :func:`build_shipped_graphs`), else one built once and kept in
    rtseg's cache (``$RTSEG_CACHE/backends``). Exporting and calibrating cost 8-30 s on 2 cores,
    reading a file back well under one."""
    import shutil

    from rtseg.io import atomic_path, cache_root

    name = graph_name(model, size, runtime, int8, options)
    for path in (shipped_graphs() / name, cache_root() / "backends" / name):
        if path.is_file():
            return path
    with tempfile.TemporaryDirectory(prefix="rtseg-backend-") as tmp:
        built = export_for(model, size, runtime, int8, options, Path(tmp))
        with atomic_path(path) as out:
            shutil.copyfile(built, out)
    return path


def graph_ready(model, size: tuple[int, int], runtime: str, int8: bool, options: BuildOptions) -> bool:
    """Whether this graph is at hand without building: shipped with the package or cached."""
    from rtseg.io import cache_root

    name = graph_name(model, size, runtime, int8, options)
    return (shipped_graphs() / name).is_file() or (cache_root() / "backends" / name).is_file()


#: The graphs the package ships for each shipped model: what ``auto`` picks on CPUs with int8 dot
#: products, so a video starts at once and needs no calibration data (0.5-0.7 MB each; the float
#: graphs, 1.5 MB each, are built on first use and cached instead).
SHIPPED_GRAPH_BACKENDS = ("openvino-int8",)


def build_shipped_graphs(out: Path | None = None) -> list[Path]:
    """Build the graphs of :data:`SHIPPED_GRAPH_BACKENDS` for every shipped model at its input
    size, calibrated on the package's frames, into ``rtseg/shipped/graphs`` (``make
    shipped-graphs``), built anew every time; older files there are removed."""
    import shutil

    from rtseg.backends import default_calibration, get_backend
    from rtseg.checkpoint import shipped_models
    from rtseg.weights import load_weights

    out = Path(out) if out is not None else shipped_graphs()
    out.mkdir(parents=True, exist_ok=True)
    keep = []
    for name in shipped_models():
        loaded = load_weights(name)
        size = tuple(loaded.input_size)
        for backend in SHIPPED_GRAPH_BACKENDS:
            b = get_backend(backend)
            options = BuildOptions(calibration=default_calibration() if b.requires.calibration else None,
                                   mean=tuple(loaded.mean), std=tuple(loaded.std))
            target = out / graph_name(loaded.model, size, b.onnx_runtime, b.int8, options)
            with tempfile.TemporaryDirectory(prefix="rtseg-backend-") as tmp:  # always anew: the code may have changed
                shutil.copyfile(export_for(loaded.model, size, b.onnx_runtime, b.int8, options, Path(tmp)), target)
            keep.append(target)
    for old in out.glob("*.onnx"):
        if old not in keep:
            old.unlink()
    return keep


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

    def build_class_runner(self, model, options: BuildOptions) -> ClassRunner | None:
        """OpenVINO: the same graph with the class map added
        (:func:`rtseg.onnx_runtimes.load_class_runner`), per input shape."""
        if self.onnx_runtime != "openvino":
            return None

        def build(hw, n):
            path = cached_graph(model, hw, "openvino", self.int8, options)
            run = load_class_runner(path, options.threads, (n, 3, *hw))
            return lambda x: run(np.ascontiguousarray(x.detach().cpu().float().numpy()))

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
        b.precision = "int8" if int8 else "float32"
        b.requires = runtime_requirements(runtime, module, int8=int8)
        made.append(b)
    return made
