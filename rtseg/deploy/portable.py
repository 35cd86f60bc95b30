"""Standard-op ONNX forms of the PyTorch ops some runtimes cannot run as the exporter writes
them (``rtseg export --target opencv|openvino``).

Max-unpooling (ENet's decoder). torch.onnx writes ``aten.max_unpool2d`` as a zero tensor from
``ConstantOfShape`` (its shape computed from the symbolic batch) and a ``ScatterND`` with
PyTorch's per-plane flat indices. ONNX Runtime runs that fastest; OpenCV DNN 5.0 fails on the
first forward (``constantofshape_layer.cpp: blobs.size() == 1``: it wants a constant shape).
:func:`max_unpool2x` writes the same values as a gather instead of a scatter: which of the four
window positions won (from the indices), four masked copies of the values, ``DepthToSpace``.
No scatter and no shape arithmetic beyond the plane width.

Max-pooling with indices (ENet's encoder), OpenVINO only. OpenVINO's CPU plugin runs an ONNX
``MaxPool`` that also returns indices on a reference (non-JIT) kernel: 80-89% of ENet's forward
pass by OpenVINO's own performance counters (docs/deployment_runtimes.md).
:func:`max_pool2x_with_indices` writes the same values and indices without it: the four window
corners as strided slices, their elementwise maximum, and the flat index of the first corner
equal to it, in PyTorch's scan order, as PyTorch's own kernel resolves ties.
"""

from __future__ import annotations

import torch
from onnxscript import opset18 as op

from rtseg.errors import RtsegError


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


def max_pool2x_with_indices(x, kernel_size, stride=(), padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    """``aten.max_pool2d_with_indices`` for a 2x2 stride-2 window without padding (ENet's only
    form): (N, C, H, W), H and W even -> values (N, C, H/2, W/2) and int64 indices flat within each
    input plane (``row * W + col``), as PyTorch returns them.

    The corners a, b, c, d (scan order) sit at offsets 0, 1, W, W + 1 from the window's top-left
    element, whose flat index is ``2i * W + 2j``. The winner is the first corner equal to the
    maximum. Other pooling forms are refused here, so the export names them instead of writing a
    wrong graph."""
    window = (list(kernel_size), list(stride) or list(kernel_size), list(padding), list(dilation))
    if window != ([2, 2], [2, 2], [0, 0], [1, 1]) or ceil_mode:
        raise RtsegError(f"--target openvino writes max-pooling with indices for 2x2 windows of stride 2 "
                         f"without padding only; this model pools with kernel {kernel_size}, stride "
                         f"{stride}, padding {padding}, dilation {dilation}, ceil_mode {ceil_mode}")
    # SpaceToDepth puts corner (b1, b2) of every window in channels [(2 b1 + b2) C, (2 b1 + b2 + 1) C):
    # (N, 4C, h, w), split into the four (N, C, h, w): one node, as fast in OpenVINO as four strided
    # Slices (ENet at 360x480, 2 threads, AVX2 EPYC: 54.1 vs 54.6 ms; with the MaxPool kept, 499 ms).
    a, b, c, d = op.Split(op.SpaceToDepth(x, blocksize=2), axis=1, num_outputs=4)
    top = op.Max(a, b, c, d)  # (N, C, h, w)
    width = op.Shape(x, start=3, end=4)  # (1,) int64: W
    zero, one, two = (op.Constant(value_int=v) for v in (0, 1, 2))
    offset = op.Where(op.Equal(a, top), zero, op.Where(op.Equal(b, top), one,
                      op.Where(op.Equal(c, top), width, op.Add(width, one))))  # (N, C, h, w) int64
    rows = op.Range(zero, op.Squeeze(op.Shape(top, start=2, end=3)), one)
    cols = op.Range(zero, op.Squeeze(op.Shape(top, start=3, end=4)), one)
    corner = op.Add(op.Unsqueeze(op.Mul(op.Mul(rows, two), width), op.Constant(value_ints=[1])),
                    op.Mul(cols, two))  # (h, w): the top-left element's flat index 2i * W + 2j
    return top, op.Add(offset, corner)


def hardsigmoid_as_clip(x):
    """``aten.hardsigmoid`` as PyTorch computes it, ``clip(x + 3, 0, 6) / 6``: any shape, same
    shape out, instead of the ONNX ``HardSigmoid`` node.

    OpenCV DNN 5.0 and 5.1 rewrite ``Mul(HardSigmoid(a), b)`` as ``HardSwish(a)`` (``a *
    hardsigmoid(a)``) without checking that ``b`` is ``a``: MobileNetV3's squeeze-excitation gate
    ``hardsigmoid(s) * x`` with s (N, C, 1, 1) and x (N, C, H, W) then comes out as (N, C, 1, 1),
    and with equal shapes it comes out with wrong values (single-op graphs against ONNX Runtime;
    docs/deployment_runtimes.md). A ``Clip`` is not part of that pattern."""
    three = op.CastLike(op.Constant(value_float=3.0), x)
    six = op.CastLike(op.Constant(value_float=6.0), x)
    zero = op.CastLike(op.Constant(value_float=0.0), x)
    return op.Div(op.Clip(op.Add(x, three), zero, six), six)


def translation_table(target: str) -> dict:
    """``torch.onnx.export(custom_translation_table=...)`` for the standard-op graph form of
    ``target`` (``opencv`` or ``openvino``)."""
    table = {torch.ops.aten.max_unpool2d.default: max_unpool2x}
    if target == "opencv":
        table[torch.ops.aten.hardsigmoid.default] = hardsigmoid_as_clip
    if target == "openvino":
        table[torch.ops.aten.max_pool2d_with_indices.default] = max_pool2x_with_indices
    return table
