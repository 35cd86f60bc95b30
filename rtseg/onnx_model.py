"""Run an exported ONNX model through ONNX Runtime with the interface of a PyTorch model, so
``rtseg eval`` / ``predict`` / ``bench`` accept ``.onnx`` files (float or int8).

It sits in the bottom layer, beside the checkpoint reader, because the one weights loader
(:mod:`rtseg.weights`) opens ``.onnx`` files with it and ``deploy`` (export, bench) builds on
both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rtseg.errors import CheckpointError

#: ONNX metadata keys written by ``rtseg export`` (JSON values).
META_KEYS = ("rtseg_classes", "rtseg_normalization", "rtseg_input_size", "rtseg_model")


def metadata_from_checkpoint(ckpt: dict, input_size) -> dict:
    """What ``rtseg export`` stores in the ONNX file so the file alone can be used as weights."""
    return {"rtseg_classes": ckpt["classes"], "rtseg_normalization": ckpt["normalization"],
            "rtseg_input_size": list(ckpt.get("input_size") or input_size), "rtseg_model": ckpt["model"]}


def make_session(path: str | Path, threads: int = 0, optimization: str = "all"):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise CheckpointError(f"cannot load ONNX model {path}: {e}") from None


class OnnxSegmentationModel:
    """Callable like an eval-mode model: (N, 3, H, W) float tensor -> (N, C, H, W) logits tensor."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        try:
            import onnx
        except ImportError:  # pragma: no cover - depends on the install
            raise CheckpointError(f"{path}: running ONNX files needs pip install 'rtseg[export]'") from None

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"ONNX model not found: {path}")
        try:
            proto = onnx.load(str(self.path), load_external_data=False)
        except Exception as e:  # protobuf decode errors: not an ONNX file
            raise CheckpointError(f"cannot read ONNX model {path}: not an ONNX file ({type(e).__name__})") from None
        meta = {p.key: p.value for p in proto.metadata_props}
        missing = [k for k in META_KEYS if k not in meta]
        if missing:
            raise CheckpointError(f"{path} has no rtseg metadata ({', '.join(missing)}): export it with "
                                  "'rtseg export'")
        self.meta = {k: json.loads(meta[k]) for k in META_KEYS}
        self.session = make_session(self.path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.outputs_classes = self.session.get_outputs()[0].name == "classes"
        if self.outputs_classes:
            raise CheckpointError(f"{path} was exported with --argmax (class maps): evaluation and "
                                  "prediction need logits; export without --argmax")

    def eval(self) -> OnnxSegmentationModel:
        return self

    def to(self, *args, **kwargs) -> OnnxSegmentationModel:
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x.detach().cpu().float().numpy())})[0]
        return torch.from_numpy(out)
