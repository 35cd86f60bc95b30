"""Post-training static int8 quantisation with ONNX Runtime (QDQ, per-channel weights)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from rtseg.deploy.export import strip_debug_info
from rtseg.errors import RtsegError
from rtseg.io import atomic_path


def parse_calibration(spec: str) -> tuple[str, str, int]:
    """'camvid:train:64' -> ('camvid', 'train', 64)."""
    parts = spec.split(":")
    if len(parts) != 3 or not parts[2].isdigit() or int(parts[2]) < 1:
        raise RtsegError(f"--calibrate {spec!r}: expected DATASET:SPLIT:N, e.g. camvid:train:64")
    return parts[0], parts[1], int(parts[2])


def calibration_frames(dataset: str, split: str, count: int, size: tuple[int, int], mean, std,
                       data_root: str | None = None) -> list[np.ndarray]:
    """``count`` real frames spread evenly over the split, resized and normalised: (1, 3, H, W)."""
    from rtseg.datasets import build_dataset
    from rtseg.datasets.transforms import build_eval_transform

    ds = build_dataset(dataset, split, data_root, build_eval_transform(tuple(size), mean, std))
    idx = np.linspace(0, len(ds) - 1, num=min(count, len(ds))).round().astype(int)
    return [ds[int(i)][0][None].numpy() for i in idx]


def quantize_int8(float_model: str | Path, out: str | Path, frames: list[np.ndarray],
                  keep_float: list[str] | None = None, per_channel: bool = True) -> dict:
    """Write an int8 QDQ model calibrated on ``frames``. ``keep_float``: substrings of node
    names to leave in float (layers that lose too much accuracy). Returns what was done."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quant_pre_process, quantize_static)

    class _Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self.items = iter([{name: f} for f in frames])

        def get_next(self):
            return next(self.items, None)

    float_model = Path(float_model)
    graph = onnx.load(str(float_model))
    input_name = graph.graph.input[0].name
    excluded = [n.name for n in graph.graph.node if any(k in n.name for k in (keep_float or []))]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # No constant folding: it would turn ENet's unpooling buffers (ConstantOfShape) into
        # megabytes of stored zeros.
        quant_pre_process(str(float_model), str(pre), skip_optimization=True, skip_symbolic_shape=True)
        with atomic_path(out) as tmp_out:
            quantize_static(str(pre), str(tmp_out), _Reader(input_name), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                            nodes_to_exclude=excluded)
            # Carry the rtseg metadata over to the quantised model.
            q = onnx.load(str(tmp_out))
            strip_debug_info(q)
            del q.metadata_props[:]
            q.metadata_props.extend(graph.metadata_props)
            onnx.save(q, str(tmp_out))
    if not Path(out).is_file():
        raise RtsegError(f"quantisation wrote no model to {out}")
    return {"calibration_frames": len(frames), "per_channel": per_channel, "float_nodes": excluded,
            "format": "QDQ (uint8 activations, int8 weights)"}
