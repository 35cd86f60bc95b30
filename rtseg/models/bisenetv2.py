"""BiSeNet V2: Bilateral Network with Guided Aggregation for Real-time Semantic Segmentation.
Yu, Gao, Wang, Yu, Shen, Sang, IJCV 2021. https://arxiv.org/abs/2004.02147
(reference implementation: https://github.com/CoinCheung/BiSeNet)

Two branches over the same input: the detail branch (wide, shallow: plain 3x3 convs to 1/8,
128 channels) keeps spatial detail; the semantic branch (narrow, deep: a stem, gather-and-expand
layers with depthwise convs, down to 1/32, and a context-embedding block with global pooling)
gives context. Bilateral guided aggregation fuses them, each branch gating the other through
a sigmoid, at 1/8; a head upsamples to the input. Booster heads on the semantic stages (1/4,
1/8, 1/16, 1/32) add auxiliary losses in training only. Designed to train from scratch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtseg.models._layers import conv_bn_act, resize


class _Stem(nn.Module):
    """(N, 3, H, W) -> (N, 16, H/4, W/4): a strided conv, then a strided conv pair beside a max
    pool, concatenated and fused."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = conv_bn_act(3, 16, stride=2)
        self.left = nn.Sequential(conv_bn_act(16, 8, 1), conv_bn_act(8, 16, stride=2))
        self.right = nn.MaxPool2d(3, 2, 1)
        self.fuse = conv_bn_act(32, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.fuse(torch.cat([self.left(x), self.right(x)], 1))


class _GatherExpand(nn.Module):
    """Gather-and-expand layer: 3x3 conv, depthwise 3x3 expanding x6 (two of them, the first
    strided, when ``stride`` is 2), 1x1 projection; residual (a depthwise-separable strided
    shortcut when the shape changes), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: int = 6) -> None:
        super().__init__()
        mid = cin * expand
        layers = [conv_bn_act(cin, cin)]
        if stride == 1:
            layers.append(conv_bn_act(cin, mid, groups=cin))
        else:
            layers += [conv_bn_act(cin, mid, stride=2, groups=cin, act=None), conv_bn_act(mid, mid, groups=mid)]
        layers.append(conv_bn_act(mid, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        # Residual branches start near zero (last BN weight 0), as in the reference.
        nn.init.zeros_(self.body[-1][1].weight)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv_bn_act(cin, cin, stride=stride, groups=cin, act=None),
                                          conv_bn_act(cin, cout, 1, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + (x if self.shortcut is None else self.shortcut(x)))


class _ContextEmbedding(nn.Module):
    """Global average pool, BN, 1x1 conv, broadcast-added to the input, 3x3 conv."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv_gap = conv_bn_act(channels, channels, 1)
        self.conv_last = conv_bn_act(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.conv_gap(self.bn(x.mean(dim=(2, 3), keepdim=True)))  # (N, C, 1, 1)
        return self.conv_last(x + context)


class _GuidedAggregation(nn.Module):
    """Bilateral guided aggregation of detail (1/8) and semantic (1/32) features at 1/8."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        c = channels
        self.detail_keep = nn.Sequential(conv_bn_act(c, c, groups=c, act=None), nn.Conv2d(c, c, 1, bias=False))
        self.detail_down = nn.Sequential(conv_bn_act(c, c, stride=2, act=None), nn.AvgPool2d(3, 2, 1))
        self.semantic_up = conv_bn_act(c, c, act=None)
        self.semantic_keep = nn.Sequential(conv_bn_act(c, c, groups=c, act=None), nn.Conv2d(c, c, 1, bias=False))
        self.conv = conv_bn_act(c, c)

    def forward(self, detail: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        high = self.detail_keep(detail) * torch.sigmoid(resize(self.semantic_up(semantic), detail))  # 1/8
        low = self.detail_down(detail) * torch.sigmoid(self.semantic_keep(semantic))  # 1/32
        return self.conv(high + resize(low, detail))


class _Head(nn.Module):
    """3x3 conv-BN-ReLU to ``mid`` channels, dropout 0.1, 1x1 conv to the classes."""

    def __init__(self, cin: int, mid: int, num_classes: int) -> None:
        super().__init__()
        self.conv = conv_bn_act(cin, mid)
        self.drop = nn.Dropout(0.1)
        self.classifier = nn.Conv2d(mid, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.drop(self.conv(x)))


class BiSeNetV2(nn.Module):
    """BiSeNet V2 (https://arxiv.org/abs/2004.02147).

    Args:
        num_classes: output channels.
        boosters: build the four booster (auxiliary) heads used in training.

    Input (N, 3, H, W) of any size (stride-2 layers round up and every fusion resizes to its
    partner). Eval output: logits (N, C, H, W), bilinearly upsampled from 1/8. Training output:
    ``{"out", "aux1".."aux4"}`` (boosters at 1/4, 1/8, 1/16, 1/32), all at the input size.
    """

    def __init__(self, num_classes: int, boosters: bool = True) -> None:
        super().__init__()
        self.detail = nn.Sequential(  # (N, 128, H/8, W/8)
            conv_bn_act(3, 64, stride=2), conv_bn_act(64, 64),
            conv_bn_act(64, 64, stride=2), conv_bn_act(64, 64), conv_bn_act(64, 64),
            conv_bn_act(64, 128, stride=2), conv_bn_act(128, 128), conv_bn_act(128, 128))
        self.stem = _Stem()  # (N, 16, H/4, W/4)
        self.s3 = nn.Sequential(_GatherExpand(16, 32, 2), _GatherExpand(32, 32))  # 1/8
        self.s4 = nn.Sequential(_GatherExpand(32, 64, 2), _GatherExpand(64, 64))  # 1/16
        self.s5 = nn.Sequential(_GatherExpand(64, 128, 2), *[_GatherExpand(128, 128) for _ in range(3)])  # 1/32
        self.context = _ContextEmbedding(128)
        self.aggregate = _GuidedAggregation(128)
        self.head = _Head(128, 1024, num_classes)
        self.boosters = nn.ModuleList(_Head(c, 128, num_classes) for c in (16, 32, 64, 128)) if boosters else None
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():  # again, so that the residual branches' last BN stays at 0
            if isinstance(m, _GatherExpand):
                nn.init.zeros_(m.body[-1][1].weight)

    #: Why ``rtseg prune`` refuses this model (see rtseg.compress).
    pruning_refusal = ("its gather-and-expand layers widen channels inside depthwise convolutions "
                       "(groups = input channels, 6x outputs), which torch-pruning's dependency graph "
                       "does not shrink consistently (it fails indexing the expanded channels)")

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """The class outputs of the head and the boosters."""
        heads = [self.head, *(self.boosters or [])]
        return [h.classifier for h in heads]

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        detail = self.detail(x)  # (N, 128, H/8, W/8)
        s2 = self.stem(x)  # (N, 16, H/4, W/4)
        s3 = self.s3(s2)  # (N, 32, H/8, W/8)
        s4 = self.s4(s3)  # (N, 64, H/16, W/16)
        s5 = self.s5(s4)  # (N, 128, H/32, W/32)
        logits = resize(self.head(self.aggregate(detail, self.context(s5))), size)  # (N, C, H, W)
        if not self.training:
            return logits
        out = {"out": logits}
        if self.boosters is not None:
            for i, (booster, feat) in enumerate(zip(self.boosters, (s2, s3, s4, s5)), start=1):
                out[f"aux{i}"] = resize(booster(feat), size)
        return out


def bisenetv2(num_classes: int, boosters: bool = True) -> BiSeNetV2:
    """BiSeNet V2 as in the paper, with the reference implementation's 1024-channel head."""
    return BiSeNetV2(num_classes, boosters=boosters)
