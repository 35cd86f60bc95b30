"""DDRNet-23-slim: Deep Dual-resolution Networks for Real-time and Accurate Semantic Segmentation
of Road Scenes. Hong, Pan, Sun, Jia, 2021. https://arxiv.org/abs/2101.06085
(code: https://github.com/ydhongHIT/DDRNet)

A ResNet-like trunk splits after 1/8 resolution into a high-resolution branch that stays at 1/8
(64 channels) and a low-resolution branch that goes down to 1/64 (32 -> 256 channels). Twice,
the branches exchange features (bilateral fusion: the high branch is strided into the low one,
the low one compressed by a 1x1 conv and upsampled into the high one). The low branch ends in
DAPPM (multi-scale context), which is upsampled and added to the high branch before the head.
An auxiliary head on the high branch after the first fusion supervises training (weight 0.4 in
the paper). The slim variant: base width 32, [2, 2, 2, 2] basic blocks, head width 64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtseg.models._dualres import BasicBlock, Bottleneck, SegmentHead, init_weights, make_layer, stem
from rtseg.models._layers import DeepAggregationPyramidPooling, conv_bn_act, resize


class DDRNet(nn.Module):
    """DDRNet (https://arxiv.org/abs/2101.06085).

    Args:
        num_classes: output channels.
        planes: base width (32: DDRNet-23-slim, 64: DDRNet-23).
        spp_planes, head_planes: DAPPM branch and head widths.
        aux_head: build the auxiliary head (training only; checkpoints keep it).

    Input (N, 3, H, W) of any size; eval output: logits (N, C, H, W), bilinearly upsampled from
    1/8. Training output: ``{"out", "aux1"}``, both at the input size.
    """

    def __init__(self, num_classes: int, planes: int = 32, spp_planes: int = 128, head_planes: int = 64,
                 aux_head: bool = True) -> None:
        super().__init__()
        high = planes * 2
        self.stem = stem(planes)  # (N, planes, H/4, W/4)
        self.layer1 = make_layer(BasicBlock, planes, planes, 2)  # 1/4
        self.layer2 = make_layer(BasicBlock, planes, planes * 2, 2, stride=2)  # 1/8
        # Low-resolution branch
        self.layer3 = make_layer(BasicBlock, planes * 2, planes * 4, 2, stride=2)  # 1/16
        self.layer4 = make_layer(BasicBlock, planes * 4, planes * 8, 2, stride=2)  # 1/32
        self.layer5 = make_layer(Bottleneck, planes * 8, planes * 8, 1, stride=2)  # 1/64, 16 * planes
        # High-resolution branch, 1/8 throughout
        self.layer3_high = make_layer(BasicBlock, planes * 2, high, 2)
        self.layer4_high = make_layer(BasicBlock, high, high, 2)
        self.layer5_high = make_layer(Bottleneck, high, high, 1)  # 2 * high channels
        # Bilateral fusion
        self.compression3 = conv_bn_act(planes * 4, high, 1, act=None)
        self.compression4 = conv_bn_act(planes * 8, high, 1, act=None)
        self.down3 = conv_bn_act(high, planes * 4, 3, stride=2, act=None)
        self.down4 = nn.Sequential(*conv_bn_act(high, planes * 4, 3, stride=2),  # indices 0-2, then 3-4
                                   *conv_bn_act(planes * 4, planes * 8, 3, stride=2, act=None))
        self.spp = DeepAggregationPyramidPooling(planes * 16, spp_planes, planes * 4, parallel=False)
        self.head = SegmentHead(planes * 4, head_planes, num_classes)
        self.aux_head = SegmentHead(high, head_planes, num_classes) if aux_head else None
        init_weights(self)

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """The heads' class outputs; every other channel is tied by residual sums and fusions,
        which torch-pruning's dependency graph follows."""
        return [h.conv2 for h in (self.head, self.aux_head) if h is not None]

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        x = self.layer1(self.stem(x))  # (N, planes, H/4, W/4)
        x = self.layer2(F.relu(x))  # (N, 2 planes, H/8, W/8)
        low = self.layer3(F.relu(x))  # (N, 4 planes, H/16, W/16)
        high = self.layer3_high(F.relu(x))  # (N, high, H/8, W/8)
        low, high = low + self.down3(F.relu(high)), high + resize(self.compression3(F.relu(low)), high)
        aux = high
        low = self.layer4(F.relu(low))  # (N, 8 planes, H/32, W/32)
        high = self.layer4_high(F.relu(high))
        low, high = low + self.down4(F.relu(high)), high + resize(self.compression4(F.relu(low)), high)
        high = self.layer5_high(F.relu(high))  # (N, 4 planes, H/8, W/8)
        context = resize(self.spp(self.layer5(F.relu(low))), high)  # (N, 4 planes, H/8, W/8)
        logits = resize(self.head(high + context), size)  # (N, C, H, W)
        if not self.training:
            return logits
        out = {"out": logits}
        if self.aux_head is not None:
            out["aux1"] = resize(self.aux_head(aux), size)
        return out


def ddrnet23_slim(num_classes: int, aux_head: bool = True) -> DDRNet:
    """DDRNet-23-slim as in the paper (5.7 M parameters with the 19 Cityscapes classes)."""
    return DDRNet(num_classes, planes=32, spp_planes=128, head_planes=64, aux_head=aux_head)
