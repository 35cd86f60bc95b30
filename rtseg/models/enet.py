"""ENet: A Deep Neural Network Architecture for Real-Time Semantic Segmentation.

Paszke, Chaurasia, Kim, Culurciello, 2016. https://arxiv.org/abs/1606.02147

Encoder: an initial block (3x3 stride-2 conv, 13 filters, concatenated with a 2x2 max-pool of the
input: 16 channels), stage 1 (downsampling to 64 + 4 regular bottlenecks), stages 2 and 3 (stage 2
downsamples to 128; each runs regular, dilated 2, asymmetric 5, dilated 4, regular, dilated 8,
asymmetric 5, dilated 16). Decoder: stage 4 (upsampling to 64 + 2 regular), stage 5 (upsampling to
16 + 1 regular) and a 2x transposed convolution to the classes. Upsampling bottlenecks max-unpool
with the indices of the matching downsampling bottleneck. BN everywhere, PReLU in the encoder,
ReLU in the decoder, spatial dropout 0.01 in stage 1 and 0.1 after (none in the decoder).
"""

from __future__ import annotations

import contextlib
import threading

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

from rtseg.models import _layers as layers

#: The image is downsampled three times, so the network works on multiples of 8 internally.
_STRIDE = 8


def _act(prelu: bool, channels: int) -> nn.Module:
    return (layers.prelu if prelu else layers.relu)(channels)


def _conv_bn_act(cin: int, cout: int, kernel, stride=1, padding=0, dilation=1, prelu=True) -> nn.Sequential:
    # ENet pads explicitly (its 2x2 stride-2 projection has none).
    return layers.conv_bn_act(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation,
                              act=layers.prelu if prelu else layers.relu)


def _window_corners(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The four elements of every 2x2 window in PyTorch's max-pool scan order (top-left,
    top-right, bottom-left, bottom-right): 4 x (N, C, H/2, W/2) strided views."""
    return x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]


def _max_pool2x(x: torch.Tensor) -> torch.Tensor:
    """2x2 stride-2 max-pool as three elementwise maxima: 5x faster than ``F.max_pool2d`` on a
    3-channel channels-last image on the CPU, and it fuses under torch.compile."""
    if _portable():  # strided slices do not convert (pnnx: "slice with step 2 is not supported")
        return F.max_pool2d(x, 2, stride=2)
    a, b, c, d = _window_corners(x)
    return torch.maximum(torch.maximum(a, b), torch.maximum(c, d))


def _max_pool2x_with_codes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2x2 stride-2 max-pool returning, instead of flat indices, which window element won:
    (N, C, H, W) -> values and codes (N, C, H/2, W/2), 0..3 in scan order, the first on ties,
    exactly as PyTorch's max-pool indices. The codes are stored in x's dtype, which keeps the
    compiled loops vectorised. Elementwise only, so torch.compile fuses pooling and unpooling
    into their neighbours (see :func:`_use_window_codes` for where it is used)."""
    a, b, c, d = _window_corners(x)
    with torch.no_grad():
        top = torch.maximum(torch.maximum(a, b), torch.maximum(c, d))
        codes = torch.where(a == top, 0.0, torch.where(b == top, 1.0, torch.where(c == top, 2.0, 3.0)))
    if not (torch.is_grad_enabled() and x.requires_grad):
        return top, codes
    # Select rather than take the max, so the gradient reaches only the winning element, as in
    # max_pool2d's backward (torch.maximum would split it between ties).
    return torch.where(codes == 0, a, torch.where(codes == 1, b, torch.where(codes == 2, c, d))), codes


def _max_unpool2x_codes(values: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_max_pool2x_with_codes`: (N, C, h, w) -> (N, C, 2h, 2w), each value at
    its window's winning position, zeros elsewhere. Interleaves along the innermost dimensions
    of the input's memory layout (channels-last or not), so the output keeps that layout."""
    channels_last = values.dim() == 4 and values.is_contiguous(memory_format=torch.channels_last)
    if channels_last:  # work on (N, h, w, C) views
        values, codes = values.permute(0, 2, 3, 1), codes.permute(0, 2, 3, 1)
    row, col = (1, 2) if channels_last else (2, 3)  # the h and w dimensions
    corners = [torch.where(codes == k, values, 0.0) for k in range(4)]
    top = torch.stack(corners[:2], dim=col + 1).flatten(col, col + 1)  # columns interleaved: 2w
    bottom = torch.stack(corners[2:], dim=col + 1).flatten(col, col + 1)
    out = torch.stack([top, bottom], dim=row + 1).flatten(row, row + 1)  # rows interleaved: 2h
    return out.permute(0, 3, 1, 2) if channels_last else out


def _use_window_codes() -> bool:
    # Both forms give identical results. Eager PyTorch (and TorchScript): the native
    # max_pool2d_with_indices / max_unpool2d kernels are ~10x faster than the elementwise form.
    # torch.compile: the elementwise form fuses into the neighbouring loops (the native ones
    # become separate scatter kernels). ONNX: ONNX Runtime's MaxPool + ScatterND beat the ~20
    # elementwise nodes (its Where is slow), and the exporter writes ScatterND with PyTorch's
    # index layout, not ONNX MaxUnpool's.
    return torch.compiler.is_compiling() and not torch.onnx.is_in_onnx_export()


_PORTABLE = threading.local()


@contextlib.contextmanager
def portable_pooling():
    """Within it (in this thread), ENet's pooling and unpooling take :func:`_max_pool2x_with_mask`'s
    arithmetic-only form, for converters that map neither max-pooling indices nor max-unpooling
    nor strided slices (pnnx to NCNN: :mod:`rtseg.backends.ncnn` traces inside it). Same
    results as the other forms, ties included; slower in PyTorch."""
    before = getattr(_PORTABLE, "on", False)
    _PORTABLE.on = True
    try:
        yield
    finally:
        _PORTABLE.on = before


def _portable() -> bool:
    return getattr(_PORTABLE, "on", False)


def _max_pool2x_with_mask(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2x2 stride-2 max-pool returning a one-hot mask of the winning window element (the first
    in scan order on ties, as PyTorch's indices): (N, C, H, W) -> values (N, C, H/2, W/2) and
    mask (N, C, 4, H/2 * W/2). Made of pixel-unshuffle, reshape, max, cumsum and arithmetic
    only: no comparison, where or strided slice, which NCNN lacks or pnnx cannot map."""
    n, c, hh, ww = x.shape
    h, w = hh // 2, ww // 2
    q = F.pixel_unshuffle(x, 2).reshape(n, c, 4, h * w)  # dim 2: top-left, top-right, bottom-left, bottom-right
    top = q.amax(dim=2, keepdim=True)  # (N, C, 1, h*w)
    # top - q >= 0, so ceil() is 0 exactly where q == top and >= 1 elsewhere: eq is 1 at the maxima.
    eq = 1.0 - torch.clamp(torch.ceil(top - q), max=1.0)
    earlier = torch.cumsum(eq, dim=2) - eq  # maxima before this element in scan order
    return top.reshape(n, c, h, w), eq * (1.0 - torch.clamp(earlier, max=1.0))


def _max_unpool2x_mask(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_max_pool2x_with_mask`: (N, C, h, w) -> (N, C, 2h, 2w)."""
    n, c, h, w = values.shape
    spread = values.reshape(n, c, 1, h * w) * mask  # (N, C, 4, h*w): the value at its winner, 0 elsewhere
    return F.pixel_shuffle(spread.reshape(n, 4 * c, h, w), 2)


def _max_pool2x_with_indices(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) -> values (N, C, H/2, W/2) and what :func:`_max_unpool2x` needs to undo it."""
    if _portable():
        return _max_pool2x_with_mask(x)
    if _use_window_codes():
        return _max_pool2x_with_codes(x)
    return F.max_pool2d(x, 2, stride=2, return_indices=True)


def _max_unpool2x(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """2x2 stride-2 max-unpooling with the indices (or window codes) of
    :func:`_max_pool2x_with_indices`: (N, C, h, w) -> (N, C, 2h, 2w)."""
    if indices.shape != values.shape:
        # The portable form's winner mask (N, C, 4, h*w): indices and codes have the values' shape.
        return _max_unpool2x_mask(values, indices.to(values.dtype))
    if indices.is_floating_point():  # window codes (their dtype may differ under autocast)
        return _max_unpool2x_codes(values, indices.to(values.dtype))
    # The aten op directly: nn.MaxUnpool2d validates the output size in Python.
    return torch.ops.aten.max_unpool2d(values, indices, [2 * values.shape[-2], 2 * values.shape[-1]])


class _InitialBlock(nn.Module):
    """(N, 3, H, W) -> (N, 16, H/2, W/2): 13 conv filters + the 3 max-pooled input channels."""

    def __init__(self, out_channels: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, out_channels - 3, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), _max_pool2x(x)], dim=1)))


class _RegularBottleneck(nn.Module):
    """Residual bottleneck at constant size: 1x1 projection, a 3x3 (regular or dilated) or a 5x1 +
    1x5 (asymmetric) conv, 1x1 expansion, spatial dropout, added to the input."""

    def __init__(self, channels: int, dilation: int = 1, asymmetric: int = 0, dropout: float = 0.1,
                 prelu: bool = True, internal_ratio: int = 4) -> None:
        super().__init__()
        inner = channels // internal_ratio
        if asymmetric:
            k = asymmetric
            middle = nn.Sequential(
                nn.Conv2d(inner, inner, (k, 1), padding=(k // 2, 0), bias=False),
                nn.Conv2d(inner, inner, (1, k), padding=(0, k // 2), bias=False),
                nn.BatchNorm2d(inner), _act(prelu, inner))
        else:
            middle = _conv_bn_act(inner, inner, 3, padding=dilation, dilation=dilation, prelu=prelu)
        self.branch = nn.Sequential(
            _conv_bn_act(channels, inner, 1, prelu=prelu),
            middle,
            nn.Conv2d(inner, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
        )
        self.out_act = _act(prelu, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_act(x + self.branch(x))


class _DownsamplingBottleneck(nn.Module):
    """(N, Cin, H, W) -> (N, Cout, H/2, W/2) and the max-pool indices for the decoder.

    Main branch: 2x2 max-pool (indices kept), channels zero-padded to Cout. Side branch: 2x2 stride-2
    projection, 3x3 conv, 1x1 expansion, spatial dropout.
    """

    def __init__(self, cin: int, cout: int, dropout: float, prelu: bool = True,
                 internal_ratio: int = 4) -> None:
        super().__init__()
        inner = cin // internal_ratio
        self.pad_channels = cout - cin
        self.branch = nn.Sequential(
            _conv_bn_act(cin, inner, 2, stride=2, prelu=prelu),
            _conv_bn_act(inner, inner, 3, padding=1, prelu=prelu),
            nn.Conv2d(inner, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
        )
        self.out_act = _act(prelu, cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        main, indices = _max_pool2x_with_indices(x)
        main = F.pad(main, (0, 0, 0, 0, 0, self.pad_channels))  # zero channels Cin..Cout-1
        return self.out_act(main + self.branch(x)), indices


class _UpsamplingBottleneck(nn.Module):
    """(N, Cin, H, W) + indices -> (N, Cout, 2H, 2W).

    Main branch: 1x1 conv to Cout, BN, max-unpooling with the matching downsampling's indices.
    Side branch: 1x1 projection, 3x3 stride-2 transposed conv, 1x1 expansion.
    """

    def __init__(self, cin: int, cout: int, prelu: bool = False, internal_ratio: int = 4) -> None:
        super().__init__()
        inner = cin // internal_ratio
        self.main_conv = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.branch = nn.Sequential(
            _conv_bn_act(cin, inner, 1, prelu=prelu),
            nn.ConvTranspose2d(inner, inner, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(inner), _act(prelu, inner),
            nn.Conv2d(inner, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.out_act = _act(prelu, cout)

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        main = _max_unpool2x(self.main_conv(x), indices)  # input is a multiple of 8: exact 2x
        return self.out_act(main + self.branch(x))


def _stage2_sequence(channels: int, dropout: float) -> list[nn.Module]:
    """Bottlenecks x.1-x.8: regular, dilated 2, asymmetric 5, dilated 4, regular, dilated 8,
    asymmetric 5, dilated 16."""
    return [
        _RegularBottleneck(channels, dropout=dropout),
        _RegularBottleneck(channels, dilation=2, dropout=dropout),
        _RegularBottleneck(channels, asymmetric=5, dropout=dropout),
        _RegularBottleneck(channels, dilation=4, dropout=dropout),
        _RegularBottleneck(channels, dropout=dropout),
        _RegularBottleneck(channels, dilation=8, dropout=dropout),
        _RegularBottleneck(channels, asymmetric=5, dropout=dropout),
        _RegularBottleneck(channels, dilation=16, dropout=dropout),
    ]


class ENet(nn.Module):
    """ENet (https://arxiv.org/abs/1606.02147).

    Args:
        num_classes: output channels.
        num_initial_blocks: 1 is the paper. Each extra block (as in the TensorFlow ENet option)
            adds a 3x3 conv + BN + PReLU on the 16-channel, 1/2-resolution features.
        stage_two_repeat: how many times the 8-bottleneck sequence runs at 1/8 resolution
            (2 = the paper's stages 2 and 3).
        skip_connections: add encoder features to the decoder (stage 1 output after stage 4's
            upsampling, initial block output after stage 5's), the TensorFlow ENet option.

    Input (N, 3, H, W) of any size: the input is zero-padded at the bottom and right to a
    multiple of 8 (the network downsamples three times, and max-unpooling needs exact halves),
    and the logits are cropped back, so the output is (N, num_classes, H, W). In training mode
    the output is ``{"out": logits}``; in eval mode the logits tensor. ``forward`` has no Python
    branches on tensor values, so it traces and exports to ONNX with the unpooling intact.
    """

    def __init__(self, num_classes: int, num_initial_blocks: int = 1, stage_two_repeat: int = 2,
                 skip_connections: bool = False) -> None:
        super().__init__()
        if num_initial_blocks < 1 or stage_two_repeat < 1:
            raise ValueError("num_initial_blocks and stage_two_repeat must be >= 1")
        self.num_classes = num_classes
        self.skip_connections = skip_connections
        self.initial = nn.Sequential(
            _InitialBlock(16), *[_conv_bn_act(16, 16, 3, padding=1) for _ in range(num_initial_blocks - 1)])
        # Stage 1: (N, 64, H/4, W/4)
        self.down1 = _DownsamplingBottleneck(16, 64, dropout=0.01)
        self.stage1 = nn.Sequential(*[_RegularBottleneck(64, dropout=0.01) for _ in range(4)])
        # Stages 2-3: (N, 128, H/8, W/8)
        self.down2 = _DownsamplingBottleneck(64, 128, dropout=0.1)
        self.stage23 = nn.Sequential(*[b for _ in range(stage_two_repeat) for b in _stage2_sequence(128, 0.1)])
        # Stage 4: (N, 64, H/4, W/4); stage 5: (N, 16, H/2, W/2); ReLU, no dropout.
        self.up4 = _UpsamplingBottleneck(128, 64)
        self.stage4 = nn.Sequential(_RegularBottleneck(64, dropout=0.0, prelu=False),
                                    _RegularBottleneck(64, dropout=0.0, prelu=False))
        self.up5 = _UpsamplingBottleneck(64, 16)
        self.stage5 = _RegularBottleneck(16, dropout=0.0, prelu=False)
        self.classifier = nn.ConvTranspose2d(16, num_classes, 3, stride=2, padding=1, output_padding=1)
        self.grad_checkpointing = False

    #: Modules int8 export keeps in float unless told otherwise (``rtseg export --int8``): the
    #: full- and half-resolution start of the encoder, where quantisation error is born and then
    #: carried through the whole network. Measured with ``rtseg export --int8 --sensitivity`` on
    #: an ENet trained without CamVid sequence 0006R0, scored on that sequence: these three raised
    #: pixel agreement with float by 0.41, 0.17 and 0.16 points, each other module by <= 0.03
    #: (docs/deployment.md, README "Export and int8").
    int8_keep_float = ("initial.", "down1.", "stage1.")

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute the 1/8-resolution bottlenecks in the backward pass instead of storing their
        activations (less memory, about one more forward pass of compute)."""
        self.grad_checkpointing = enabled

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """Layers whose output channels filter pruning must keep. Only the bottlenecks' inner
        channels are pruned: the outer channels are tied to max-unpooling indices (pool input ->
        unpool input), to the downsampling zero-padding and to the residual sums."""
        keep: list[nn.Module] = [self.initial[0].conv, *[m[0] for m in self.initial[1:]], self.classifier]
        for block in self.modules():
            if isinstance(block, (_RegularBottleneck, _DownsamplingBottleneck)):
                keep.append(block.branch[2])  # 1x1 expansion back to the outer channels
            elif isinstance(block, _UpsamplingBottleneck):
                keep += [block.main_conv[0], block.branch[4]]
        return keep

    def _run_stage23(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint_sequential(self.stage23, len(self.stage23) // 4, x, use_reentrant=False)
        return self.stage23(x)

    def forward(self, x: torch.Tensor):
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % _STRIDE, 0, (-h) % _STRIDE))  # (N, 3, H8, W8)
        x0 = self.initial(x)  # (N, 16, H8/2, W8/2)
        x1, idx1 = self.down1(x0)  # (N, 64, H8/4, W8/4)
        x1 = self.stage1(x1)
        x2, idx2 = self.down2(x1)  # (N, 128, H8/8, W8/8)
        x2 = self._run_stage23(x2)
        y = self.up4(x2, idx2)  # (N, 64, H8/4, W8/4)
        if self.skip_connections:
            y = y + x1
        y = self.stage4(y)
        y = self.up5(y, idx1)  # (N, 16, H8/2, W8/2)
        if self.skip_connections:
            y = y + x0
        y = self.stage5(y)
        logits = self.classifier(y)[..., :h, :w]  # (N, C, H, W)
        return {"out": logits} if self.training else logits


def enet(num_classes: int, num_initial_blocks: int = 1, stage_two_repeat: int = 2,
         skip_connections: bool = False) -> ENet:
    """ENet as in the paper (defaults) or with the TensorFlow ENet's options."""
    return ENet(num_classes, num_initial_blocks=num_initial_blocks,
                stage_two_repeat=stage_two_repeat, skip_connections=skip_connections)
