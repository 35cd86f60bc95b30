"""EDANet: Efficient Dense Modules of Asymmetric Convolution for Real-Time Semantic Segmentation.

Lo, Hang, Chan, Lin, ACM Multimedia Asia 2019. https://arxiv.org/abs/1809.06323
(authors' code: https://github.com/shaoyuanlo/EDANet; 0.69 M parameters for 19 classes, 66.4%
mIoU on the CamVid test from scratch in the paper, trained on train + val at 360x480).

Dense connectivity at 1/4 and 1/8 resolution, no decoder:

* two downsampling blocks (ENet's: a 3x3 stride-2 conv concatenated with the 2x2 max-pooled
  input, BN, ReLU) to 15 and 60 channels at 1/4;
* 5 EDA modules (dilations 1, 1, 1, 2, 2), each concatenating 40 new channels to its input:
  60 -> 260 channels;
* a downsampling block (conv only, the channels shrink) to 130 at 1/8;
* 8 EDA modules (dilations 2, 2, 4, 4, 8, 8, 16, 16): 130 -> 450 channels;
* a 1x1 projection to the classes and a bilinear x8.

``refine=R`` (not in the paper; rtseg's, issue #37) adds a refinement at 1/4: the 1/8 logits
upsampled x2, plus a class map from the 1/4 features (1x1 conv to R channels, BN, ReLU, 3x3
conv to the classes), then a bilinear x4. Why: on CamVid's held-out 0006R0 the same weights
score 1.6 points more on frames enlarged to 540x720 (2.25x the work), so detail the x8
upsampling loses is worth something. R = 32 adds 0.25 GFLOPs at 360x480 to the paper's network
(5.80 -> 6.05) and 0.20 to the pruned one (3.27 -> 3.48). Its last conv starts at zero, so a
network grown from trained weights (``rtseg train --init-from W model.args.refine=32``)
starts as W but for the upsampling (x2 then x4 instead of x8: the shipped pruned EDANet's
held-out 46.97 on 0006R0 becomes 46.92).

An EDA module (C channels in, growth k = 40): 1x1 conv to k, BN, ReLU; 3x1 + 1x3 conv, BN,
ReLU; the same pair dilated, BN, ReLU; spatial dropout 0.02; its k channels concatenated in
front of the input (C + k out). The convolutions keep their biases, as in the authors' code.

CPU cost (``rtseg models``, 360x480, 11 classes): 0.69 M parameters, 5.8 GFLOPs (ENet: 2.6), of which
the 3x1/1x3 convolutions are dense (not depth-wise) and run oneDNN's fast kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtseg.models import _layers as layers

#: Three stride-2 stages: the network works on multiples of 8 internally.
_STRIDE = 8


class EDAModule(nn.Module):
    """(N, C, H, W) -> (N, C + growth, H, W): ``growth`` new channels, then the input."""

    def __init__(self, channels: int, dilation: int, growth: int = 40, dropout: float = 0.02) -> None:
        super().__init__()
        k, d = growth, dilation
        self.branch = nn.Sequential(
            nn.Conv2d(channels, k, 1), nn.BatchNorm2d(k), nn.ReLU(inplace=True),  # (N, k, H, W)
            nn.Conv2d(k, k, (3, 1), padding=(1, 0)), nn.Conv2d(k, k, (1, 3), padding=(0, 1)),
            nn.BatchNorm2d(k), nn.ReLU(inplace=True),
            nn.Conv2d(k, k, (3, 1), padding=(d, 0), dilation=(d, 1)),
            nn.Conv2d(k, k, (1, 3), padding=(0, d), dilation=(1, d)),
            nn.BatchNorm2d(k), nn.ReLU(inplace=True),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch(x), x], dim=1)


def _dense_block(channels: int, dilations: tuple[int, ...], growth: int) -> nn.Sequential:
    """EDA modules in sequence, each one ``growth`` channels wider at its input."""
    return nn.Sequential(*[EDAModule(channels + i * growth, d, growth) for i, d in enumerate(dilations)])


class Refine(nn.Module):
    """(N, F, H/4, W/4) features -> (N, C, H/4, W/4): what to add to the x2-upsampled logits."""

    def __init__(self, features: int, channels: int, num_classes: int) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(features, channels, 1, bias=False), nn.BatchNorm2d(channels),
                                    nn.ReLU(inplace=True))  # (N, R, H/4, W/4)
        self.classify = nn.Conv2d(channels, num_classes, 3, padding=1)  # (N, C, H/4, W/4)

    def zero_init(self) -> None:
        """The refinement adds nothing until it learns: a grown network starts as its source,
        but for the upsampling (x2 then x4 instead of x8)."""
        nn.init.zeros_(self.classify.weight)
        nn.init.zeros_(self.classify.bias)

    def forward(self, quarter: torch.Tensor) -> torch.Tensor:
        return self.classify(self.reduce(quarter))


class EDANet(nn.Module):
    """EDANet (https://arxiv.org/abs/1809.06323).

    Args:
        num_classes: output channels.
        growth: channels each EDA module adds (the paper's k = 40).
        refine: channels of the 1/4-resolution refinement (0: none, as in the paper).

    Input (N, 3, H, W) of any size: zero-padded at the bottom and right to a multiple of 8 and
    the logits cropped back, so the output is (N, num_classes, H, W). In training mode the
    output is ``{"out": logits}``; in eval mode the logits tensor.
    """

    #: Dilations of the modules at 1/4 and at 1/8 resolution.
    DILATIONS_1 = (1, 1, 1, 2, 2)
    DILATIONS_2 = (2, 2, 4, 4, 8, 8, 16, 16)

    def __init__(self, num_classes: int, growth: int = 40, refine: int = 0) -> None:
        super().__init__()
        if refine < 0:
            raise ValueError(f"refine: expected 0 (none) or a channel count, got {refine}")
        self.num_classes = num_classes
        wide_1 = 60 + len(self.DILATIONS_1) * growth  # 260
        wide_2 = wide_1 // 2 + len(self.DILATIONS_2) * growth  # 450
        self.features = nn.Sequential(
            layers.Downsampler(3, 15),  # (N, 15, H/2, W/2)
            layers.Downsampler(15, 60),  # (N, 60, H/4, W/4)
            _dense_block(60, self.DILATIONS_1, growth),  # (N, 260, H/4, W/4)
            layers.Downsampler(wide_1, wide_1 // 2),  # (N, 130, H/8, W/8)
            _dense_block(wide_1 // 2, self.DILATIONS_2, growth),  # (N, 450, H/8, W/8)
        )
        self.classifier = nn.Conv2d(wide_2, num_classes, 1)  # (N, C, H/8, W/8)
        self.refine = Refine(wide_1, refine, num_classes) if refine else None
        self._init_weights()
        if self.refine is not None:
            self.refine.zero_init()

    def _init_weights(self) -> None:
        # The authors' initialisation: conv weights N(0, 0.02), BN scales N(1, 0.02).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """Layers whose output channels filter pruning must keep: the classifier alone.
        torch-pruning's dependency graph follows the concatenations, so a module's new
        channels, a downsampler's (conv and pooled) and every module's inner convolutions
        all shrink: pruning ratio r everywhere is EDANet at width 1 - r (growth 40 -> 30 at
        0.25; 5.8 -> 3.3 GFLOPs at 360x480)."""
        return [self.classifier] + ([self.refine.classify] if self.refine is not None else [])

    def fit_new_layers(self) -> None:
        """After the other layers shrank to a pruned checkpoint's shapes (rtseg.models.pruned),
        size the refinement's input to the (pruned) 1/4 features: a network grown from pruned
        weights (rtseg.models.transfer)."""
        if self.refine is None:
            return
        with torch.no_grad():
            was = self.features.training
            quarter = self.features[:3].eval()(torch.zeros(1, 3, _STRIDE, _STRIDE))  # (1, F, 2, 2)
            self.features.train(was)
        conv = self.refine.reduce[0]
        if conv.in_channels != quarter.shape[1]:
            self.refine.reduce[0] = nn.Conv2d(quarter.shape[1], conv.out_channels, 1, bias=False)
            nn.init.normal_(self.refine.reduce[0].weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor):
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % _STRIDE, 0, (-h) % _STRIDE))  # (N, 3, H8, W8)
        y = x
        for i, layer in enumerate(self.features):
            y = layer(y)
            if i == 2:
                quarter = y  # (N, 260, H8/4, W8/4)
        logits = self.classifier(y)  # (N, C, H8/8, W8/8)
        if self.refine is not None:
            # x2, add at 1/4, then one x4: one full-size resize, as without the refinement (the
            # sum of two full-size maps cost OpenVINO int8 1.7 ms on 8.4, AMX Xeon).
            logits = layers.resize_to(logits, quarter.shape[-2:]) + self.refine(quarter)  # (N, C, H8/4, W8/4)
        logits = layers.resize_to(logits, x.shape[-2:])[..., :h, :w]  # (N, C, H, W)
        return {"out": logits} if self.training else logits


def edanet(num_classes: int, growth: int = 40, refine: int = 0) -> EDANet:
    """EDANet as in the paper (k = 40); ``refine=32`` adds rtseg's 1/4-resolution refinement."""
    return EDANet(num_classes, growth=growth, refine=refine)
