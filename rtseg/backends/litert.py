"""LiteRT (TFLite), Google's runtime for Android and ARM boards: ``litert`` and ``litert-int8``,
the network converted by litert-torch to a ``.tflite`` program and run by ``ai-edge-litert``'s
interpreter on the XNNPACK delegate (the CPU kernels it runs on ARM). int8 is ai-edge-quantizer's
static int8 (weights and activations) applied to the float program, calibrated on frames:
litert-torch 0.10's own PT2E route fails on both shipped networks (ENet: a layout pass leaves the
two operands of the unpooling's ``where`` in different layouts; EDANet: a padding's scales).

The converter and the runtime install apart. The runtime (``rtseg[litert]``) is small; the
converter (``rtseg[litert-export]``: litert-torch, JAX) pins typing-extensions below what
pydantic and selenium want, so it may live in its own environment: a Python named by
``$RTSEG_LITERT_PYTHON`` (``make litert-env``) converts in a child process when litert-torch is
not importable here.

Two rewrites before converting, both exact: a padded ``ConvTranspose2d`` (ENet, ERFNet, FCN8s)
fails to legalise ("failed to legalize operation 'mhlo.convolution'"), so it becomes the same
convolution unpadded, then cropped (:class:`CroppedTransposedConv`); ENet's max-unpooling takes
its elementwise form under ``torch.export`` (litert-torch lowers max-pooling indices as zeros).
BatchNorm is left to the converter, which folds it (folding first made ENet's file 2.2x larger).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg.backends.base import (
    Backend,
    BackendUnavailable,
    BuildOptions,
    PerShape,
    Requirements,
    Runner,
    calibration_tensors,
)

INSTALL = "pip install 'rtseg[litert]'"
CONVERTER_ENV = "RTSEG_LITERT_PYTHON"
CONVERTER_INSTALL = (f"pip install 'rtseg[litert-export]' (litert-torch; in its own environment if it clashes, named "
                     f"by ${CONVERTER_ENV}: make litert-env)")
#: Part of every program's cache key: bump it when the conversion changes.
TFLITE_FORMAT = 1


class CroppedTransposedConv(nn.Module):
    """``ConvTranspose2d(padding=p, output_padding=q)`` as the same convolution with no padding
    (TFLite's TRANSPOSE_CONV, 'VALID': (in - 1) * s + d * (k - 1) + 1 per side), cropped to
    [p, p + out) and zero-padded where q > p; the bias after the crop. Same weights, same result
    (within float rounding); takes ``output_size`` like the original (FCN8s passes it)."""

    def __init__(self, conv: nn.ConvTranspose2d) -> None:
        super().__init__()
        # The attributes callers read (FCN8s reads .stride).
        self.stride, self.padding, self.kernel_size = conv.stride, conv.padding, conv.kernel_size
        self.dilation, self.output_padding = conv.dilation, conv.output_padding
        self.conv = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                                       padding=0, groups=conv.groups, bias=False, dilation=conv.dilation)
        self.conv.weight = conv.weight
        self.bias = conv.bias

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        y = self.conv(x)  # (N, C, H_valid, W_valid)
        full = y.shape[-2:]
        natural = [f - 2 * p for f, p in zip(full, self.padding)]
        extra_out = (self.output_padding if output_size is None
                     else [int(o) - n for o, n in zip(list(output_size)[-2:], natural)])
        ends = [p + n + q for p, n, q in zip(self.padding, natural, extra_out)]
        short = [max(0, e - f) for e, f in zip(ends, full)]
        if any(short):
            y = nn.functional.pad(y, (0, short[1], 0, short[0]))
        y = y[..., self.padding[0]:ends[0], self.padding[1]:ends[1]]
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


def convertible(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval, float32, CPU) with every padded transposed convolution
    rewritten (:class:`CroppedTransposedConv`)."""
    model = copy.deepcopy(model).cpu().float().eval()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ConvTranspose2d) and (any(child.padding) or any(child.output_padding)):
                setattr(parent, name, CroppedTransposedConv(child))
    return model


def convert_here(model: nn.Module, example: torch.Tensor, out: Path, frames: list[np.ndarray] | None) -> None:
    """litert-torch in this process: ``model`` -> ``out`` (float), or with ``frames`` ((1, 3, H,
    W) float32, normalised) int8 by ai-edge-quantizer on the float program."""
    import litert_torch

    model = convertible(model)
    with torch.no_grad():
        edge = litert_torch.convert(model, (example,))
    if frames is None:
        edge.export(str(out))
        return
    from ai_edge_quantizer import quantizer, recipe

    with tempfile.TemporaryDirectory(prefix="rtseg-litert-") as tmp:
        float_path = Path(tmp) / "float.tflite"
        edge.export(str(float_path))
        q = quantizer.Quantizer(str(float_path))
        q.load_quantization_recipe(recipe.static_wi8_ai8())
        batch = example.shape[0]
        samples = [{"args_0": np.repeat(f, batch, axis=0)} for f in frames]
        result = q.calibrate({"serving_default": samples})
        q.quantize(result).export_model(str(out))


def convert(model: nn.Module, size: tuple[int, int], batch: int, frames: list[np.ndarray] | None) -> bytes:
    """The ``.tflite`` program of ``model`` for (``batch``, 3, *size*): here if litert-torch is
    importable, else in the Python ``$RTSEG_LITERT_PYTHON`` names (rtseg and litert-torch
    installed there). A :class:`BackendUnavailable` naming the backend when neither converts."""
    from importlib.util import find_spec

    name = "litert-int8" if frames is not None else "litert"
    example = torch.zeros(batch, 3, *size)
    with tempfile.TemporaryDirectory(prefix="rtseg-litert-") as tmp:
        out = Path(tmp) / "model.tflite"
        if find_spec("litert_torch") is not None:
            try:
                convert_here(model, example, out, frames)
            except Exception as e:  # the converter's own errors run to pages: its first line
                raise BackendUnavailable(f"--backend {name}: litert-torch cannot convert {type(model).__name__}: "
                                         f"{_first_line(e)}") from None
            return out.read_bytes()
        python = os.environ.get(CONVERTER_ENV)
        if not python:
            raise BackendUnavailable(f"--backend {name}: building a LiteRT program needs litert-torch: "
                                     f"{CONVERTER_INSTALL}")
        if shutil.which(python) is None:
            raise BackendUnavailable(f"--backend {name}: ${CONVERTER_ENV} is {python}, which is not a Python here "
                                     "(make litert-env builds the one the Makefile names)")
        # The job for the converter's process: the network as an exported program (no pickled
        # classes, which that process might not import), the example's shape, frames.
        try:
            with torch.no_grad():
                program = torch.export.export(convertible(model), (example,))
            torch.export.save(program, str(Path(tmp) / "model.pt2"))
        except Exception as e:
            raise BackendUnavailable(f"--backend {name}: torch.export cannot capture {type(model).__name__} for "
                                     f"litert-torch: {_first_line(e)}") from None
        (Path(tmp) / "job.json").write_text(json.dumps({"shape": list(example.shape)}))
        if frames is not None:
            np.save(Path(tmp) / "frames.npy", np.stack(frames))
        done = subprocess.run([python, "-m", "rtseg.backends.litert", tmp], capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            raise BackendUnavailable(f"--backend {name}: litert-torch ({python}) cannot convert "
                                     f"{type(model).__name__}: {_last_error(done.stderr)}")
        return out.read_bytes()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def _last_error(stderr: str) -> str:
    """The child's exception line (JAX appends notes after it), else its last line."""
    import re

    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    return (errors or lines or ["no output"])[-1][:300]


def cached_program(model: nn.Module, size: tuple[int, int], batch: int, int8: bool, options: BuildOptions) -> Path:
    """The ``.tflite`` for these weights and this setting, built once and kept in rtseg's cache."""
    from rtseg.backends.graph import graph_key
    from rtseg.io import atomic_path, cache_root

    key = graph_key(model, size, f"litert-{TFLITE_FORMAT}-n{batch}", int8, options)
    path = cache_root() / "backends" / f"{key}-litert{'-int8' if int8 else ''}.tflite"
    if not path.is_file():
        frames = calibration_tensors(options, size) if int8 else None
        data = convert(model, size, batch, frames)
        with atomic_path(path) as out:
            Path(out).write_bytes(data)
    return path


def load_program_runner(path: str | Path, threads: int = 0) -> Runner:
    """A runner for the ``.tflite`` file ``path`` (its static shape), XNNPACK on ``threads``
    (0: the interpreter's default). An int8 program takes and gives int8: quantised in,
    dequantised out here with the program's own scales."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads if threads > 0 else None)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def run(x: torch.Tensor) -> torch.Tensor:
        a = x.detach().cpu().float().contiguous().numpy()  # (N, 3, H, W)
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            a = np.clip(np.round(a / scale) + zero, -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], a)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])  # (N, C, H, W)
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return torch.from_numpy(np.array(y, dtype=np.float32))

    return run


class LiteRT(Backend):
    """The network as a LiteRT program on XNNPACK, per input shape."""

    onnx_runtime = None
    file_format, file_suffix = "tflite", ".tflite"

    def __init__(self, int8: bool = False) -> None:
        self.int8 = int8
        self.name = "litert-int8" if int8 else "litert"
        self.precision = "int8" if int8 else "float32"
        self.summary = ("LiteRT (TFLite) on XNNPACK, int8 (ai-edge-quantizer, weights and activations), calibrated"
                        if int8 else "LiteRT (TFLite) on XNNPACK (the Android and ARM board CPU kernels), float32")
        self.requires = Requirements(packages=(("ai_edge_litert", INSTALL),), calibration=int8, static_size=True)

    @property
    def cpu_only(self) -> bool:
        return True

    def build_runner(self, model, size, batch, options: BuildOptions) -> Runner:
        def build(hw, n):
            return load_program_runner(cached_program(model, hw, n, self.int8, options), options.threads)

        return PerShape(build)

    def write_file(self, model, size, path, options: BuildOptions) -> None:
        from rtseg.io import atomic_path

        data = Path(cached_program(model, tuple(size), 1, self.int8, options)).read_bytes()
        with atomic_path(path) as out:
            Path(out).write_bytes(data)

    def file_runner(self, path: str | Path, options: BuildOptions) -> Runner:
        """A ``.tflite`` file run as it is (its own static shape)."""
        return load_program_runner(path, options.threads)


BACKENDS = [LiteRT(), LiteRT(int8=True)]


def _convert_job(folder: str) -> None:
    """The converter's process (``python -m rtseg.backends.litert FOLDER``): FOLDER's model.pt2,
    job.json and frames.npy -> model.tflite."""
    folder = Path(folder)
    model = torch.export.load(str(folder / "model.pt2")).module()
    shape = json.loads((folder / "job.json").read_text())["shape"]
    frames_file = folder / "frames.npy"
    frames = list(np.load(frames_file)) if frames_file.is_file() else None
    convert_here(model, torch.zeros(*shape), folder / "model.tflite", frames)


if __name__ == "__main__":
    _convert_job(sys.argv[1])
