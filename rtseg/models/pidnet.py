"""PIDNet-S: PIDNet: A Real-time Semantic Segmentation Network Inspired by PID Controllers.
Xu, Xiong, Bhattacharyya, CVPR 2023. https://arxiv.org/abs/2206.02066
(code: https://github.com/XuJiacong/PIDNet)

Three branches, as the terms of a PID controller: the I(ntegral) branch is a ResNet-like trunk
down to 1/64 with PAPPM context (semantics); the P(roportional) branch stays at 1/8 and takes
in the I branch through pixel-attention-guided fusion (Pag: a per-pixel sigmoid similarity
decides how much of the upsampled I features to blend in); the D(erivative) branch, also at
1/8, adds upsampled I features and learns boundaries. The boundary-attention-guided fusion
(Bag, light version in PIDNet-S) mixes P and I under the sigmoid of the D features. In
training, a P head (auxiliary, weight 0.4) and a D head (1 channel, boundaries) add the paper's
losses (``rtseg.engine.losses``: weighted boundary BCE x 20 and boundary-aware CE).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtseg.models._dualres import BasicBlock, Bottleneck, SegmentHead, init_weights, make_layer, stem
from rtseg.models._layers import DeepAggregationPyramidPooling, conv_bn_act, resize


class _PagFusion(nn.Module):
    """Pixel-attention-guided fusion: x (P, 1/8) and y (I, coarser) -> (1 - s) x + s up(y),
    s = sigmoid(<f_x(x), up(f_y(y))>) over ``mid`` channels."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.f_x = conv_bn_act(channels, mid, 1, act=None)
        self.f_y = conv_bn_act(channels, mid, 1, act=None)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        query = resize(self.f_y(y), x)  # (N, mid, h, w)
        sim = torch.sigmoid((self.f_x(x) * query).sum(dim=1, keepdim=True))  # (N, 1, h, w)
        return (1 - sim) * x + sim * resize(y, x)


class _LightBag(nn.Module):
    """Light boundary-attention-guided fusion: conv_p((1 - a) i + p) + conv_i(i + a p),
    a = sigmoid(d)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_p = conv_bn_act(cin, cout, 1, act=None)
        self.conv_i = conv_bn_act(cin, cout, 1, act=None)

    def forward(self, p: torch.Tensor, i: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        edge = torch.sigmoid(d)
        return self.conv_p((1 - edge) * i + p) + self.conv_i(i + edge * p)


class PIDNet(nn.Module):
    """PIDNet-S / -M (https://arxiv.org/abs/2206.02066; the small and medium variants, m=2, n=3).

    Args:
        num_classes: output channels.
        planes: base width (32: PIDNet-S, 64: PIDNet-M).
        ppm_planes, head_planes: PAPPM branch and head widths.
        aux_heads: build the P (semantic) and D (boundary) heads used in training.

    Input (N, 3, H, W) of any size; eval output: logits (N, C, H, W), bilinearly upsampled from
    1/8. Training output: ``{"out", "aux1" (P head), "boundary" (D head, 1 channel)}``, all at
    the input size.
    """

    def __init__(self, num_classes: int, planes: int = 32, ppm_planes: int = 96, head_planes: int = 128,
                 aux_heads: bool = True) -> None:
        super().__init__()
        self.stem = stem(planes)  # (N, planes, H/4, W/4)
        # I branch
        self.layer1 = make_layer(BasicBlock, planes, planes, 2)  # 1/4
        self.layer2 = make_layer(BasicBlock, planes, planes * 2, 2, stride=2)  # 1/8
        self.layer3 = make_layer(BasicBlock, planes * 2, planes * 4, 3, stride=2)  # 1/16
        self.layer4 = make_layer(BasicBlock, planes * 4, planes * 8, 3, stride=2)  # 1/32
        self.layer5 = make_layer(Bottleneck, planes * 8, planes * 8, 2, stride=2)  # 1/64, 16 planes
        # P branch (1/8)
        self.compression3 = conv_bn_act(planes * 4, planes * 2, 1, act=None)
        self.compression4 = conv_bn_act(planes * 8, planes * 2, 1, act=None)
        self.pag3 = _PagFusion(planes * 2, planes)
        self.pag4 = _PagFusion(planes * 2, planes)
        self.layer3_p = make_layer(BasicBlock, planes * 2, planes * 2, 2)
        self.layer4_p = make_layer(BasicBlock, planes * 2, planes * 2, 2)
        self.layer5_p = make_layer(Bottleneck, planes * 2, planes * 2, 1)  # 4 planes
        # D branch (1/8)
        down = conv_bn_act(planes * 2, planes, 1, act=None)
        self.layer3_d = BasicBlock(planes * 2, planes, downsample=down, no_relu=True)
        self.layer4_d = make_layer(Bottleneck, planes, planes, 1)  # 2 planes
        self.diff3 = conv_bn_act(planes * 4, planes, 3, act=None)
        self.diff4 = conv_bn_act(planes * 8, planes * 2, 3, act=None)
        self.layer5_d = make_layer(Bottleneck, planes * 2, planes * 2, 1)  # 4 planes
        self.spp = DeepAggregationPyramidPooling(planes * 16, ppm_planes, planes * 4, parallel=True)
        self.bag = _LightBag(planes * 4, planes * 4)
        self.head = SegmentHead(planes * 4, head_planes, num_classes)
        self.head_p = SegmentHead(planes * 2, head_planes, num_classes) if aux_heads else None
        self.head_d = SegmentHead(planes * 2, planes, 1) if aux_heads else None
        init_weights(self)

    #: Why ``rtseg prune`` refuses this model (see rtseg.compress).
    pruning_refusal = ("PAPPM's grouped 3x3 convolution over the concatenated scales and the Pag/Bag "
                       "fusions (channel-summed attention, P and I channels mixed under the D branch's "
                       "sigmoid) tie channels across branches that torch-pruning's dependency graph "
                       "does not prune consistently (it fails indexing them)")

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """The class and boundary outputs."""
        return [h.conv2 for h in (self.head, self.head_p, self.head_d) if h is not None]

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        x = self.layer1(self.stem(x))  # (N, planes, H/4, W/4)
        x = F.relu(self.layer2(F.relu(x)))  # (N, 2 planes, H/8, W/8)
        p = self.layer3_p(x)  # (N, 2 planes, H/8, W/8)
        d = self.layer3_d(x)  # (N, planes, H/8, W/8)
        x = F.relu(self.layer3(x))  # (N, 4 planes, H/16, W/16)
        p = self.pag3(p, self.compression3(x))
        d = d + resize(self.diff3(x), d)
        p_aux = p
        x = F.relu(self.layer4(x))  # (N, 8 planes, H/32, W/32)
        p = self.layer4_p(F.relu(p))
        d = self.layer4_d(F.relu(d))  # (N, 2 planes, H/8, W/8)
        p = self.pag4(p, self.compression4(x))
        d = d + resize(self.diff4(x), d)
        d_aux = d
        p = self.layer5_p(F.relu(p))  # (N, 4 planes, H/8, W/8)
        d = self.layer5_d(F.relu(d))  # (N, 4 planes, H/8, W/8)
        i = resize(self.spp(self.layer5(x)), p)  # (N, 4 planes, H/8, W/8)
        logits = resize(self.head(self.bag(p, i, d)), size)  # (N, C, H, W)
        if not self.training:
            return logits
        out = {"out": logits}
        if self.head_p is not None:
            out["aux1"] = resize(self.head_p(p_aux), size)
            out["boundary"] = resize(self.head_d(d_aux), size)  # (N, 1, H, W) boundary logits
        return out


def pidnet_s(num_classes: int, aux_heads: bool = True) -> PIDNet:
    """PIDNet-S as in the paper (7.6 M parameters with the 19 Cityscapes classes)."""
    return PIDNet(num_classes, planes=32, ppm_planes=96, head_planes=128, aux_heads=aux_heads)
