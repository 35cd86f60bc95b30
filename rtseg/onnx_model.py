"""Run an exported ONNX model with the interface of a PyTorch model, so ``rtseg eval`` /
``predict`` / ``video`` / ``serve`` / ``bench`` accept ``.onnx`` files (float or int8), in ONNX
Runtime (the default), OpenVINO or OpenCV DNN (:mod:`rtseg.onnx_runtimes`).

It sits in the bottom layer, beside the checkpoint reader, because the one weights loader
(:mod:`rtseg.weights`) opens ``.onnx`` files with it and ``deploy`` (export, bench) builds on
both."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import torch

from rtseg.errors import CheckpointError
from rtseg.onnx_runtimes import Runner, load_runner

#: ONNX metadata keys written by ``rtseg export`` (JSON values).
META_KEYS = ("rtseg_classes", "rtseg_normalization", "rtseg_input_size", "rtseg_model")


def metadata_from_checkpoint(ckpt: dict, input_size) -> dict:
    """What ``rtseg export`` stores in the ONNX file so the file alone can be used as weights."""
    return {"rtseg_classes": ckpt["classes"], "rtseg_normalization": ckpt["normalization"],
            "rtseg_input_size": list(ckpt.get("input_size") or input_size), "rtseg_model": ckpt["model"]}


class OnnxSegmentationModel:
    """Callable like an eval-mode model: (N, 3, H, W) float tensor -> (N, C, H, W) logits tensor.

    ``runtime``: onnxruntime (default), openvino or opencv. OpenVINO plans its kernels for one
    static shape, so a graph exported with dynamic sizes is compiled once per input shape met
    (the newest few are kept), as ``--compile`` does in PyTorch."""

    #: Compiled OpenVINO shapes kept for a dynamic graph (each holds its own buffers).
    MAX_SHAPES = 4

    def __init__(self, path: str | Path, threads: int = 0, runtime: str = "onnxruntime") -> None:
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
        if proto.graph.output[0].name == "classes":
            raise CheckpointError(f"{path} was exported with --argmax (class maps): evaluation and "
                                  "prediction need logits; export without --argmax")
        dims = proto.graph.input[0].type.tensor_type.shape.dim  # [N, 3, H, W]
        #: int for a static dimension, None for a dynamic one
        self.input_shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        self.runtime, self.threads = runtime, threads
        self._runners: dict[tuple[int, ...] | None, Runner] = {}
        self._lock = threading.Lock()
        # Load now, so a graph the runtime refuses fails here and not on the first frame. OpenVINO:
        # compiled for one image when the export's size is static (the batch is always symbolic).
        if runtime != "openvino":
            self._runner(None)
        elif all(self.input_shape[2:]):
            self._runner((1, *self.input_shape[1:]))

    def _runner(self, shape: tuple[int, ...] | None) -> Runner:
        with self._lock:
            run = self._runners.get(shape)
            if run is None:
                if len(self._runners) >= self.MAX_SHAPES:
                    self._runners.pop(next(iter(self._runners)))
                run = self._runners[shape] = load_runner(self.path, self.runtime, self.threads, shape)
            return run

    def eval(self) -> OnnxSegmentationModel:
        return self

    def to(self, *args, **kwargs) -> OnnxSegmentationModel:
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = np.ascontiguousarray(x.detach().cpu().float().numpy())
        shape = tuple(a.shape) if self.runtime == "openvino" else None
        return torch.from_numpy(np.ascontiguousarray(self._runner(shape)(a)))
