"""One loader for weights, used by every command and the Python API.

``W`` (``--weights W``, ``load_model(W)``, ``evaluate(W, ...)``) is one of:

- a shipped model name (``enet-camvid``; ``None`` means the default shipped model),
- an rtseg checkpoint file (``rtseg train``, ``rtseg prune``),
- an ``.onnx`` file written by ``rtseg export`` (its metadata holds the class table and
  normalisation).

Anything else ends in a one-line :class:`~rtseg.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from rtseg.checkpoint import load_checkpoint
from rtseg.datasets.classes import ClassTable
from rtseg.errors import CheckpointError
from rtseg.models import INIT_ONLY_ARGS, create_model
from rtseg.models.pruned import shrink_to_state_dict
from rtseg.onnx_runtimes import RUNTIMES
from rtseg.runtime import set_threads


def model_from_checkpoint(ckpt: dict) -> nn.Module:
    """Rebuild the model and load its weights (strict); returned in eval mode on the CPU."""
    spec = ckpt["model"]
    args = {k: v for k, v in spec.get("args", {}).items() if k not in INIT_ONLY_ARGS}
    try:
        model = create_model(spec["name"], num_classes=spec["num_classes"], **args)
        if spec.get("pruned"):
            shrink_to_state_dict(model, ckpt["state_dict"])
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (ValueError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{ckpt.get('path', 'checkpoint')}: cannot rebuild model "
                              f"{spec.get('name')!r}: {first}") from None
    return model.eval()


@dataclass
class LoadedWeights:
    """A model from a checkpoint or an exported ONNX file, with what is needed to feed it."""

    model: object  # nn.Module, or OnnxSegmentationModel (same calling convention)
    classes: ClassTable
    mean: tuple
    std: tuple
    input_size: list[int] | None  # resolution it was trained / evaluated at
    train_resize: list[int] | None  # the training config's data.resize
    fixed_size: list[int] | None  # an exported static graph accepts only this (H, W)
    name: str  # architecture, e.g. "enet" ("enet (onnx)" for an export)
    source: str  # what was asked for: the shipped name or the path
    checkpoint: dict | None  # None for an ONNX export

    @property
    def is_onnx(self) -> bool:
        return self.checkpoint is None

    @property
    def model_spec(self) -> dict:
        """{"name", "num_classes", "args"[, "pruned"]} of a checkpoint."""
        if self.checkpoint is None:
            raise CheckpointError(f"{self.source} is an exported ONNX graph; this needs PyTorch weights "
                                  "(a checkpoint or a shipped model name)")
        return self.checkpoint["model"]

    def size(self, size: list[int] | tuple[int, int] | None = None, what: str = "--size") -> tuple[int, int]:
        """(H, W) to export / trace / count FLOPs at: ``size`` if given, else the size the
        weights were trained or exported at; an error naming ``what`` when neither exists."""
        if size is not None:
            h, w = (int(v) for v in size)
            if h <= 0 or w <= 0:
                raise CheckpointError(f"{what} {h}x{w}: height and width must be positive")
            return h, w
        if self.fixed_size or self.input_size:
            return tuple(self.fixed_size or self.input_size)
        raise CheckpointError(f"{what} HxW is needed: {self.source} records no input size")

    def torch_model(self) -> nn.Module:
        """The PyTorch network; a clear error for an ONNX export (export, prune, compile)."""
        _ = self.model_spec  # raises for ONNX
        return self.model


def load_weights(weights: str | Path | None = None, threads: int = 0, runtime: str | None = None) -> LoadedWeights:
    """A shipped model name (None = default), an rtseg checkpoint path or an ``.onnx`` export.
    ``threads``: torch / ONNX runtime intra-op threads (0 = library default). ``runtime``: what
    runs an ``.onnx`` file: onnxruntime (None: the default), openvino or opencv; PyTorch weights
    run in PyTorch, so naming a runtime for them is an error."""
    set_threads(threads)
    if runtime is not None and runtime not in RUNTIMES:
        raise CheckpointError(f"--runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    if weights is not None and str(weights).lower().endswith(".onnx"):
        from rtseg.onnx_model import OnnxSegmentationModel

        runtime = runtime or "onnxruntime"
        onnx_model = OnnxSegmentationModel(weights, threads=threads, runtime=runtime)
        meta = onnx_model.meta
        hw = onnx_model.input_shape[2:]  # None entries are dynamic
        fixed = list(hw) if all(hw) else None
        engine = "onnx" if runtime == "onnxruntime" else f"onnx, {runtime}"
        return LoadedWeights(onnx_model, ClassTable.from_dict(meta["rtseg_classes"]),
                             tuple(meta["rtseg_normalization"]["mean"]), tuple(meta["rtseg_normalization"]["std"]),
                             meta["rtseg_input_size"], None, fixed, f"{meta['rtseg_model']['name']} ({engine})",
                             str(weights), None)
    if runtime is not None:
        raise CheckpointError(f"--runtime {runtime}: runs exported .onnx files; {weights or 'enet-camvid'} is PyTorch "
                              f"weights (export it first: rtseg export --target {runtime} --out model.onnx)")
    ckpt = load_checkpoint(weights)
    model = model_from_checkpoint(ckpt)
    resize = ((ckpt.get("config") or {}).get("data") or {}).get("resize")
    return LoadedWeights(model, ClassTable.from_dict(ckpt["classes"]), tuple(ckpt["normalization"]["mean"]),
                         tuple(ckpt["normalization"]["std"]), ckpt.get("input_size"), resize, None,
                         ckpt["model"]["name"], str(weights) if weights is not None else "enet-camvid", ckpt)
