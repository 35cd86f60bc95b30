"""Standard-op ONNX forms of the PyTorch ops some runtimes cannot run as the exporter writes
them (``rtseg export --target opencv|openvino``).

Max-unpooling (ENet's decoder). torch.onnx writes ``aten.max_unpool2d`` as a zero tensor from
``ConstantOfShape`` (its shape computed from the symbolic batch) and a ``ScatterND`` with
PyTorch's per-plane flat indices. ONNX Runtime runs that fastest; OpenCV DNN 5.0 fails on the
first forward (``constantofshape_layer.cpp: blobs.size() == 1``: it wants a constant shape).
:func:`max_unpool2x` writes the same values as a gather instead of a scatter: which of the four
window positions won (from the indices), four masked copies of the values, ``DepthToSpace``.
No scatter and no shape arithmetic beyond the plane width.
"""

from __future__ import annotations

import torch
from onnxscript import opset18 as op


def max_unpool2x(values, indices, output_size):
    """``aten.max_unpool2d`` for indices from a 2x2 stride-2 max-pool (ENet's only form):
    values, indices (N, C, h, w) -> (N, C, 2h, 2w), each value at its window's winning position,
    zeros elsewhere.

    The indices are flat within each output plane: ``row * 2w + col``. The window (i, j) owns
    rows 2i, 2i+1 and columns 2j, 2j+1, so the winner's corner code is
    ``(row % 2) * 2 + col % 2`` in 0..3 (scan order), and ``col % 2 == index % 2`` because the
    plane width 2w is even. Corner k's values go to channels [k*C, (k+1)*C) of a (N, 4C, h, w)
    tensor; DepthToSpace (DCR: channel (b1 * 2 + b2) * C + c -> pixel (2i + b1, 2j + b2)) lays
    them out as (N, C, 2h, 2w). Any other pooling window would break the corner arithmetic; the
    export's parity check would then fail, not pass silently."""
    two = op.Constant(value_int=2)
    width = op.Mul(op.Shape(values, start=3, end=4), two)  # (1,) int64: the output plane width 2w
    row_parity = op.Mod(op.Div(indices, width), two)
    code = op.Add(op.Mul(row_parity, two), op.Mod(indices, two))  # (N, C, h, w) int64 in 0..3
    zero = op.CastLike(op.Constant(value_float=0.0), values)
    corners = [op.Where(op.Equal(code, op.Constant(value_int=k)), values, zero) for k in range(4)]
    return op.DepthToSpace(op.Concat(*corners, axis=1), blocksize=2, mode="DCR")


def translation_table() -> dict:
    """``torch.onnx.export(custom_translation_table=...)`` for the standard-op graph form."""
    return {torch.ops.aten.max_unpool2d.default: max_unpool2x}
