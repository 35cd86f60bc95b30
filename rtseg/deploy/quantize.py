"""Post-training static int8 quantisation with ONNX Runtime (QDQ, per-channel weights)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from rtseg.deploy.onnx_graph import compact_names, strip_debug_info
from rtseg.errors import RtsegError
from rtseg.io import atomic_path


def parse_calibration(spec: str, option: str = "--calibrate") -> tuple[str, str, int]:
    """'camvid:train:64' -> ('camvid', 'train', 64)."""
    parts = spec.split(":")
    if len(parts) != 3 or not parts[2].isdigit() or int(parts[2]) < 1:
        raise RtsegError(f"{option} {spec!r}: expected DATASET:SPLIT:N, e.g. camvid:train:64")
    return parts[0], parts[1], int(parts[2])


def calibration_frames(dataset: str, split: str, count: int, size: tuple[int, int], mean, std,
                       data_root: str | None = None) -> list[np.ndarray]:
    """``count`` real frames spread evenly over the split, resized and normalised: (1, 3, H, W)."""
    from rtseg.datasets import build_dataset
    from rtseg.datasets.transforms import build_eval_transform

    ds = build_dataset(dataset, split, data_root, build_eval_transform(tuple(size), mean, std))
    idx = np.linspace(0, len(ds) - 1, num=min(count, len(ds))).round().astype(int)
    return [ds[int(i)][0][None].numpy() for i in idx]


def calibration_images(spec: str, data_root: str | None = None, option: str = "--calibrate") -> list[np.ndarray]:
    """``DATASET:SPLIT:N``: N real frames spread evenly over the split, as decoded: (H, W, 3) uint8
    RGB (the backends resize and normalise them for each input size)."""
    from rtseg.datasets import build_dataset

    dataset, split, count = parse_calibration(spec, option)
    ds = build_dataset(dataset, split, data_root)
    idx = np.linspace(0, len(ds) - 1, num=min(count, len(ds))).round().astype(int)
    return [ds.load(int(i))[0] for i in idx]


def prelu_max_nodes(proto) -> list[str]:
    """Names of the Mul and Max nodes of PReLUs exported as ``max(x, slope * x)``
    (:class:`rtseg.models.fold.PReLUAsMax`). Quantised, they cost the shipped ENet about twice
    the CamVid val mIoU that the rest of the network does (-0.8 against -0.4 in our runs, 32
    calibration frames), at no gain in speed, so they stay in float."""
    weights = {t.name for t in proto.graph.initializer}
    producer = {out: node for node in proto.graph.node for out in node.output}
    names = []
    for node in proto.graph.node:
        if node.op_type != "Max" or len(node.input) != 2:
            continue
        x, scaled = node.input
        mul = producer.get(scaled)
        if mul is not None and mul.op_type == "Mul" and x in mul.input and any(i in weights for i in mul.input):
            names += [mul.name, node.name]
    return names


def quantize_int8(float_model: str | Path, out: str | Path, frames: list[np.ndarray],
                  keep_float: list[str] | None = None, per_channel: bool = True, conv_only: bool = True,
                  moving_average: bool = True) -> dict:
    """Write an int8 QDQ model calibrated on ``frames``. ``keep_float``: module paths
    (substrings of weight names, such as ``classifier`` or ``up5``) or node names whose nodes
    stay in float (layers that lose too much accuracy). Returns what was done.

    ``conv_only``: quantise the (transposed) convolutions only, so residual sums, pooling and
    unpooling run in float and the residual stream is not rounded again at every block.
    ``moving_average``: activation ranges are the mean of the per-frame minima and maxima, not
    the extremes over all frames, so one outlier frame does not coarsen every step.
    Both raised the int8 ENet's pixel agreement with float on a sequence that neither training
    nor calibration saw (ENet on CamVid 0006R0: 95.3% of pixels, then 95.7%, then 96.9%; ``rtseg eval --backend
    onnxruntime-int8``, docs/deployment.md)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self.items = iter([{name: f} for f in frames])

        def get_next(self):
            return next(self.items, None)

    float_model = Path(float_model)
    graph = onnx.load(str(float_model))
    input_name = graph.graph.input[0].name
    weights = {t.name for t in graph.graph.initializer}
    excluded = [n.name for n in graph.graph.node
                if any(k == n.name or any(k in i for i in n.input if i in weights) for k in (keep_float or []))]
    excluded += prelu_max_nodes(graph)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # No constant folding: it would turn ENet's unpooling buffers (ConstantOfShape) into
        # megabytes of stored zeros.
        quant_pre_process(str(float_model), str(pre), skip_optimization=True, skip_symbolic_shape=True)
        with atomic_path(out) as tmp_out:
            quantize_static(str(pre), str(tmp_out), _Reader(input_name), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                            nodes_to_exclude=excluded,
                            op_types_to_quantize=["Conv", "ConvTranspose"] if conv_only else None,
                            extra_options={"CalibMovingAverage": moving_average})
            # Carry the rtseg metadata over to the quantised model.
            q = onnx.load(str(tmp_out))
            strip_debug_info(q)
            compact_names(q, weights=True)
            del q.metadata_props[:]
            q.metadata_props.extend(graph.metadata_props)
            onnx.save(q, str(tmp_out))
    if not Path(out).is_file():
        raise RtsegError(f"quantisation wrote no model to {out}")
    return {"calibration_frames": len(frames), "per_channel": per_channel, "float_nodes": excluded,
            "quantised_ops": "Conv, ConvTranspose" if conv_only else "all",
            "calibration": "min-max, moving average" if moving_average else "min-max",
            "format": "QDQ (uint8 activations, int8 weights)"}
