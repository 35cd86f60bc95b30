"""DABNet: Depth-wise Asymmetric Bottleneck with Point-wise Aggregation Decoder.

Li, Xiong, Yang, Yang, BMVC 2019. https://arxiv.org/abs/1907.11357
(authors' code: https://github.com/Reagan1311/DABNet; 0.76 M parameters for 19 classes,
66.4% mIoU on CamVid test from scratch in the paper, 1000 epochs of train + val).

A single-path encoder at 1/8 resolution with no decoder beyond a 1x1 classifier:

* stem: three 3x3 conv-BN-PReLU (the first stride 2) to 32 channels at 1/2;
* input injection: the image average-pooled to 1/2, 1/4, 1/8 is concatenated to the features
  at each resolution (3 channels each), so the deep layers still see colour;
* a downsampling block (3x3 stride-2 conv concatenated with a max-pool when channels grow),
  3 DAB modules (dilation 2) at 1/4 and 64 channels; the block's input and output and the
  1/4 image concatenated (131 channels);
* a downsampling block to 128 channels, 6 DAB modules (dilations 4, 4, 8, 8, 16, 16) at 1/8;
  concatenated likewise (259 channels); a 1x1 conv to the classes and a bilinear x8.

A DAB module (C channels, dilation d) is a pre-activated bottleneck: BN-PReLU, 3x3 conv to C/2,
then two depth-wise factorised branches, 3x1 + 1x3 and the same dilated by d, summed,
BN-PReLU, a 1x1 conv back to C, added to the input. BatchNorm epsilon 1e-3 and bias-free
convolutions throughout (the classifier too), as in the authors' code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Three stride-2 stages: the network works on multiples of 8 internally.
_STRIDE = 8
#: The authors' BatchNorm epsilon.
_BN_EPS = 1e-3


class _BNPReLU(nn.Sequential):
    """BatchNorm + per-channel PReLU (indices 0, 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(channels, eps=_BN_EPS), nn.PReLU(channels))


class _ConvBNPReLU(nn.Sequential):
    """Bias-free conv, then BN-PReLU: ``conv``, ``act``."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation,
                              groups=groups, bias=False)
        self.act = _BNPReLU(cout)


class DABModule(nn.Module):
    """(N, C, H, W) -> (N, C, H, W): the depth-wise asymmetric bottleneck (see the module doc)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        half, d = channels // 2, dilation
        self.pre = _BNPReLU(channels)
        self.reduce = _ConvBNPReLU(channels, half, 3, padding=1)  # (N, C/2, H, W)
        # Local branch: 3x1 then 1x3, depth-wise.
        self.local = nn.Sequential(_ConvBNPReLU(half, half, (3, 1), padding=(1, 0), groups=half),
                                   _ConvBNPReLU(half, half, (1, 3), padding=(0, 1), groups=half))
        # Context branch: the same, dilated.
        self.context = nn.Sequential(
            _ConvBNPReLU(half, half, (3, 1), padding=(d, 0), dilation=(d, 1), groups=half),
            _ConvBNPReLU(half, half, (1, 3), padding=(0, d), dilation=(1, d), groups=half))
        self.post = _BNPReLU(half)
        self.expand = nn.Conv2d(half, channels, 1, bias=False)  # (N, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(self.pre(x))
        return x + self.expand(self.post(self.local(y) + self.context(y)))


class _Downsample(nn.Module):
    """(N, Cin, H, W) -> (N, Cout, H/2, W/2): a 3x3 stride-2 conv to Cout - Cin channels plus
    the 2x2 max-pooled input when the channels grow (Cout > Cin), else a conv to Cout; BN-PReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.pool = cout > cin
        self.conv = nn.Conv2d(cin, cout - cin if self.pool else cout, 3, stride=2, padding=1, bias=False)
        self.act = _BNPReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pool:
            y = torch.cat([y, F.max_pool2d(x, 2, 2)], 1)
        return self.act(y)


def _downsample_image(x: torch.Tensor, times: int) -> torch.Tensor:
    """Input injection: ``times`` 3x3 stride-2 average pools (N, 3, H, W) -> (N, 3, H/2^t, W/2^t)."""
    for _ in range(times):
        x = F.avg_pool2d(x, 3, stride=2, padding=1)
    return x


class DABNet(nn.Module):
    """DABNet (https://arxiv.org/abs/1907.11357).

    Args:
        num_classes: output channels.
        block_1, block_2: DAB modules at 1/4 and at 1/8 resolution (the paper's 3 and 6; the
            1/8 modules take dilations 4, 4, 8, 8, 16, 16, cycling for more than six).

    Input (N, 3, H, W) of any size: zero-padded at the bottom and right to a multiple of 8 and
    the logits cropped back, so the output is (N, num_classes, H, W). In training mode the
    output is ``{"out": logits}``; in eval mode the logits tensor.
    """

    #: Dilations of the 1/8-resolution modules.
    DILATIONS_2 = (4, 4, 8, 8, 16, 16)

    def __init__(self, num_classes: int, block_1: int = 3, block_2: int = 6) -> None:
        super().__init__()
        if block_1 < 1 or block_2 < 1:
            raise ValueError(f"DABNet needs at least one module per block, got block_1={block_1}, block_2={block_2}")
        self.num_classes = num_classes
        self.stem = nn.Sequential(_ConvBNPReLU(3, 32, 3, stride=2, padding=1),  # (N, 32, H/2, W/2)
                                  _ConvBNPReLU(32, 32, 3, padding=1),
                                  _ConvBNPReLU(32, 32, 3, padding=1))
        self.stem_act = _BNPReLU(32 + 3)
        self.down1 = _Downsample(32 + 3, 64)  # (N, 64, H/4, W/4)
        self.block1 = nn.Sequential(*[DABModule(64, 2) for _ in range(block_1)])
        self.block1_act = _BNPReLU(64 + 64 + 3)
        self.down2 = _Downsample(64 + 64 + 3, 128)  # (N, 128, H/8, W/8)
        self.block2 = nn.Sequential(*[DABModule(128, self.DILATIONS_2[i % len(self.DILATIONS_2)])
                                      for i in range(block_2)])
        self.block2_act = _BNPReLU(128 + 128 + 3)
        self.classifier = nn.Conv2d(128 + 128 + 3, num_classes, 1, bias=False)  # (N, C, H/8, W/8)

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """Layers whose output channels filter pruning must keep: each DAB module's last 1x1
        conv (its output is added to the module's input) and the classifier. The stem, the
        downsampling convs and the modules' inner convs are pruned (concatenations and the
        depth-wise groups follow them)."""
        return [self.classifier, *(m.expand for m in self.modules() if isinstance(m, DABModule))]

    def forward(self, x: torch.Tensor):
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % _STRIDE, 0, (-h) % _STRIDE))  # (N, 3, H8, W8)
        y = self.stem_act(torch.cat([self.stem(x), _downsample_image(x, 1)], 1))  # (N, 35, H8/2, W8/2)
        y0 = self.down1(y)
        y = self.block1_act(torch.cat([self.block1(y0), y0, _downsample_image(x, 2)], 1))  # (N, 131, /4)
        y0 = self.down2(y)
        y = self.block2_act(torch.cat([self.block2(y0), y0, _downsample_image(x, 3)], 1))  # (N, 259, /8)
        logits = F.interpolate(self.classifier(y), size=x.shape[-2:], mode="bilinear", align_corners=False)
        logits = logits[..., :h, :w]  # (N, C, H, W)
        return {"out": logits} if self.training else logits


def dabnet(num_classes: int, block_1: int = 3, block_2: int = 6) -> DABNet:
    """DABNet as in the paper (3 + 6 DAB modules)."""
    return DABNet(num_classes, block_1=block_1, block_2=block_2)
