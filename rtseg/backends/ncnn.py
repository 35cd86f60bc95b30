"""NCNN, Tencent's inference runtime for phones and boards: ``ncnn``, the network traced, converted
by pnnx to an NCNN ``.param`` (the graph) and ``.bin`` (the weights, float32) and run by the
``ncnn`` Python package, one image at a time (NCNN's tensors have no batch: a batch of N is N
runs). pnnx folds BN into the convolutions itself. ENet's max-pooling indices and max-unpooling
have no NCNN layer: it is traced in its arithmetic form (:func:`rtseg.models.enet.portable_pooling`).

Float32 only: NCNN's int8 needs its ``ncnn2table`` (calibration) and ``ncnn2int8`` tools, which
neither the ``ncnn`` nor the ``pnnx`` wheel ships, and neither package has a Python calibrator."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg.backends.base import Backend, BackendUnavailable, BuildOptions, PerShape, Requirements, Runner
from rtseg.errors import RtsegError

INSTALL = "pip install 'rtseg[ncnn]'"
#: Part of every converted graph's cache key: bump it when the conversion changes.
FORMAT = 1


def _ncnn():
    """The ``ncnn`` module. Its OpenMP (its own libgomp, read when loaded) spin-waits by default:
    with 2 threads on a 2-core machine shared with another job a frame took 0.5-2.6 s instead of
    70-90 ms, so threads sleep while waiting unless the environment says otherwise."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import ncnn

    return ncnn


def layer_types(param: str | Path) -> list[str]:
    """The layer types of an NCNN ``.param`` (line 1: magic number, line 2: layer and blob counts,
    then one layer a line, its type first)."""
    return [line.split()[0] for line in Path(param).read_text().splitlines()[2:] if line.strip()]


def export_param(model: nn.Module, size: tuple[int, int], folder: str | Path) -> tuple[Path, Path]:
    """``model`` (eval, float32) at (1, 3, *size*) as ``folder/model.ncnn.param`` and ``.bin``
    (float32 weights); a one-line :class:`BackendUnavailable` where pnnx fails or leaves ops NCNN
    does not have."""
    import pnnx

    from rtseg.models.enet import portable_pooling

    name = type(model).__name__
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # pnnx writes all of these; every path given, so nothing lands in the working directory and
    # no output of an earlier run is taken for this one's.
    outputs = {key: folder / f"model{suffix}" for key, suffix in (
        ("pnnxparam", ".pnnx.param"), ("pnnxbin", ".pnnx.bin"), ("pnnxpy", "_pnnx.py"), ("pnnxonnx", ".pnnx.onnx"),
        ("ncnnparam", ".ncnn.param"), ("ncnnbin", ".ncnn.bin"), ("ncnnpy", "_ncnn.py"))}
    script = folder / "model.pt"
    # The binary itself, not pnnx.export(): that wrapper ignores the exit code and then imports the
    # generated Python (a crash shows as a missing or stale file, unmapped ops as a SyntaxError).
    # fp16=0: float32 weights (fp16 ones moved EDANet's logits by up to 0.03).
    cmd = [pnnx.EXEC_PATH, str(script), f"inputshape=[1,3,{size[0]},{size[1]}]f32", "device=cpu", "fp16=0",
           *(f"{key}={path}" for key, path in outputs.items())]
    with torch.no_grad(), portable_pooling(), warnings.catch_warnings():
        # pnnx reads TorchScript only (torch.jit warns it is deprecated), and the graph is for this
        # one size: shapes read as Python numbers (TracerWarning) are right.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model.eval(), torch.zeros(1, 3, *size), check_trace=False)
        for frozen in (False, True):
            for path in outputs.values():
                path.unlink(missing_ok=True)
            if frozen:  # pnnx crashes (SIGSEGV in its first pass) on ICNet's traced module; the
                traced = torch.jit.freeze(traced)  # frozen one, its submodules inlined, converts
            traced.save(str(script))
            result = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
            if result.returncode == 0 and outputs["ncnnparam"].is_file():
                break
        else:
            last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
            raise BackendUnavailable(f"--backend ncnn: pnnx could not convert {name} (exit code "
                                     f"{result.returncode}): {last.strip()}")
    ncnn = _ncnn()
    # pnnx leaves the ops it cannot map in the .param under their torch names (aten::max_unpool2d,
    # Tensor.slice, ...): NCNN would refuse the file only when loading it.
    unknown = sorted({t for t in layer_types(outputs["ncnnparam"]) if ncnn.layer_to_index(t) < 0})
    if unknown:
        raise BackendUnavailable(f"--backend ncnn: pnnx cannot convert {name} to NCNN layers: {', '.join(unknown)}")
    return outputs["ncnnparam"], outputs["ncnnbin"]


def _write_pair(model: nn.Module, size: tuple[int, int], param: Path, bin_path: Path) -> None:
    """Convert in a scratch folder and move the pair into place, the ``.bin`` first: a ``.param``
    present means its weights are there."""
    from rtseg.io import atomic_path

    with tempfile.TemporaryDirectory(prefix="rtseg-ncnn-") as tmp:
        made_param, made_bin = export_param(model, size, tmp)
        for made, path in ((made_bin, bin_path), (made_param, param)):
            with atomic_path(path) as out:
                shutil.copyfile(made, out)  # a copy: the scratch folder may be on another file system


def cached_param(model: nn.Module, size: tuple[int, int], options: BuildOptions) -> tuple[Path, Path]:
    """The ``.param`` and ``.bin`` for these weights at this size, converted once and kept in
    rtseg's cache (``$RTSEG_CACHE/backends``). One graph serves every batch size."""
    from rtseg.backends.graph import graph_key
    from rtseg.io import cache_root

    key = graph_key(model, size, f"ncnn-{FORMAT}-n1", False, options)
    param = cache_root() / "backends" / f"{key}-ncnn.param"
    bin_path = param.with_suffix(".bin")
    if not (param.is_file() and bin_path.is_file()):
        _write_pair(model, size, param, bin_path)
    return param, bin_path


def load_param_runner(param: str | Path, bin_path: str | Path, threads: int = 0) -> Runner:
    """A runner for an NCNN ``.param`` and its ``.bin`` (input blob ``in0``, output ``out0``, as
    pnnx names them): (N, 3, H, W) float in (its static size), (N, C, H, W) float32 out, one
    image after another. ``threads``: NCNN's threads (0: its default)."""
    ncnn = _ncnn()
    net = ncnn.Net()
    if threads > 0:
        net.opt.num_threads = threads
    # Float32 throughout, for parity with PyTorch. NCNN's defaults turn fp16 storage and arithmetic
    # on, which its ARM kernels use (its x86 ones did not: same logits either way here); bf16
    # storage, off by default, is used on x86 and moved ENet's logits by up to 5 (0.1% of pixels).
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = net.opt.use_bf16_packed = False
    if net.load_param(str(param)) != 0 or net.load_model(str(bin_path)) != 0:
        raise BackendUnavailable(f"--backend ncnn: NCNN could not load {param} and {bin_path}")

    def run(x: torch.Tensor) -> torch.Tensor:
        images = x.detach().cpu().float().numpy()
        outs = []
        for image in images:  # (3, H, W): an NCNN Mat is (c, h, w)
            ex = net.create_extractor()
            ex.input("in0", ncnn.Mat(np.ascontiguousarray(image)))
            rc, out = ex.extract("out0")
            if rc != 0:
                raise RuntimeError(f"ncnn: running {param} failed (code {rc})")
            outs.append(np.array(out))  # a copy: the Mat's memory is the extractor's
        return torch.from_numpy(np.stack(outs))

    return run


class NCNN(Backend):
    """The network as an NCNN graph converted by pnnx, float32, per input shape."""

    name = "ncnn"
    summary = "NCNN (Tencent's runtime for phones and boards), converted by pnnx, float32"
    requires = Requirements(packages=(("ncnn", INSTALL), ("pnnx", INSTALL)), static_size=True)
    precision = "float32"
    file_format, file_suffix = "ncnn", ".param"

    @property
    def cpu_only(self) -> bool:
        return True

    def build_runner(self, model, size, batch, options: BuildOptions) -> Runner:
        def build(hw, n):
            return load_param_runner(*cached_param(model, tuple(hw), options), options.threads)

        return PerShape(build)

    def write_file(self, model, size, path, options: BuildOptions) -> None:
        """``path`` (the ``.param``) and the ``.bin`` beside it (same name)."""
        path = Path(path)
        if path.suffix.lower() == ".bin":  # the graph would be written over its own weights
            raise RtsegError(f"--out {path}: give the .param path (the .bin is written beside it)")
        _write_pair(model, tuple(size), path, path.with_suffix(".bin"))

    def written_files(self, path) -> list:
        return [Path(path), Path(path).with_suffix(".bin")]

    def file_runner(self, path: str | Path, options: BuildOptions) -> Runner:
        """A ``.param`` file and the ``.bin`` beside it, run as they are (their own static size)."""
        path = Path(path)
        return load_param_runner(path, path.with_suffix(".bin"), options.threads)


BACKENDS = [NCNN()]
