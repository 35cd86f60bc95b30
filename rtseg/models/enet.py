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

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

#: The image is downsampled three times, so the network works on multiples of 8 internally.
_STRIDE = 8


def _act(prelu: bool, channels: int) -> nn.Module:
    return nn.PReLU(channels) if prelu else nn.ReLU(inplace=True)


def _conv_bn_act(cin: int, cout: int, kernel, stride=1, padding=0, dilation=1, prelu=True) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        _act(prelu, cout),
    )


class _InitialBlock(nn.Module):
    """(N, 3, H, W) -> (N, 16, H/2, W/2): 13 conv filters + the 3 max-pooled input channels."""

    def __init__(self, out_channels: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, out_channels - 3, 3, stride=2, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


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
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.branch = nn.Sequential(
            _conv_bn_act(cin, inner, 2, stride=2, prelu=prelu),
            _conv_bn_act(inner, inner, 3, padding=1, prelu=prelu),
            nn.Conv2d(inner, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
        )
        self.out_act = _act(prelu, cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        main, indices = self.pool(x)
        main = F.pad(main, (0, 0, 0, 0, 0, self.pad_channels))  # zero channels Cin..Cout-1
        return self.out_act(main + self.branch(x)), indices


class _MaxUnpool2x(nn.Module):
    """2x2 stride-2 max-unpooling: (N, C, h, w) values + pool indices -> (N, C, 2h, 2w).

    Calls the aten op directly: ``nn.MaxUnpool2d`` validates the output size in Python, which
    TorchScript tracing cannot do. The indices are PyTorch's (flattened per channel plane); the
    ONNX exporter lowers this to ScatterND with exactly that layout, avoiding the index-layout
    trap of ONNX's own MaxUnpool.
    """

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.max_unpool2d(x, indices, [2 * x.shape[-2], 2 * x.shape[-1]])


class _UpsamplingBottleneck(nn.Module):
    """(N, Cin, H, W) + indices -> (N, Cout, 2H, 2W).

    Main branch: 1x1 conv to Cout, BN, max-unpooling with the matching downsampling's indices.
    Side branch: 1x1 projection, 3x3 stride-2 transposed conv, 1x1 expansion.
    """

    def __init__(self, cin: int, cout: int, prelu: bool = False, internal_ratio: int = 4) -> None:
        super().__init__()
        inner = cin // internal_ratio
        self.main_conv = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.unpool = _MaxUnpool2x()
        self.branch = nn.Sequential(
            _conv_bn_act(cin, inner, 1, prelu=prelu),
            nn.ConvTranspose2d(inner, inner, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(inner), _act(prelu, inner),
            nn.Conv2d(inner, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.out_act = _act(prelu, cout)

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        main = self.unpool(self.main_conv(x), indices)  # input is a multiple of 8: exact 2x
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
