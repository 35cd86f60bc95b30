"""Blocks shared by the dual-resolution networks (DDRNet, PIDNet): ResNet basic and bottleneck
blocks in the DDRNet layout and the BN-ReLU-conv segmentation head (their pyramid pooling,
DAPPM and PAPPM, is :class:`rtseg.models._layers.DeepAggregationPyramidPooling`), after the
authors' code (ydhongHIT/DDRNet, XuJiacong/PIDNet): the same layers, channels and activations (the parameter counts match, see
tests/models/test_models.py); module names are rtseg's own.

Every resize goes to the size of the tensor it is added to (not ``input // 8``), so any input
size works: stride-2 convolutions round up, and the branches meet at the same sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# resize moved to the blocks every network shares; still importable from here.
from rtseg.models._layers import conv_bn_act, resize  # noqa: F401

#: BatchNorm momentum of the reference implementations.
BN_MOMENTUM = 0.1


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


def stem(planes: int) -> nn.Sequential:
    """(N, 3, H, W) -> (N, planes, H/4, W/4): two stride-2 3x3 convs (with bias), BN, ReLU."""
    return nn.Sequential(
        nn.Conv2d(3, planes, 3, stride=2, padding=1), bn(planes), nn.ReLU(inplace=True),
        nn.Conv2d(planes, planes, 3, stride=2, padding=1), bn(planes), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """3x3-3x3 residual block; ``no_relu`` leaves the sum un-activated (the last block of a
    stage, whose output feeds a fusion)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 no_relu: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = bn(planes)
        self.downsample = downsample
        self.no_relu = no_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        out = out + (x if self.downsample is None else self.downsample(x))
        return out if self.no_relu else F.relu(out)


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 residual block with expansion 2; no ReLU after the sum by default."""

    expansion = 2

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 no_relu: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = bn(planes * self.expansion)
        self.downsample = downsample
        self.no_relu = no_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = out + (x if self.downsample is None else self.downsample(x))
        return out if self.no_relu else F.relu(out)


def make_layer(block: type, cin: int, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
    """``blocks`` blocks; a 1x1 projection when the shape changes; the last without ReLU."""
    downsample = None
    if stride != 1 or cin != planes * block.expansion:
        downsample = conv_bn_act(cin, planes * block.expansion, 1, stride=stride, act=None)
    # As the references: a bottleneck never ends in ReLU; a basic block does, except the last.
    layers = [block(cin, planes, stride, downsample, no_relu=block is Bottleneck)]
    for i in range(1, blocks):
        layers.append(block(planes * block.expansion, planes, no_relu=i == blocks - 1))
    return nn.Sequential(*layers)


class SegmentHead(nn.Module):
    """BN-ReLU-3x3 conv to ``mid`` channels, BN-ReLU-1x1 conv (with bias) to the outputs."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.bn1 = bn(cin)
        self.conv1 = nn.Conv2d(cin, mid, 3, padding=1, bias=False)
        self.bn2 = bn(mid)
        self.conv2 = nn.Conv2d(mid, cout, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))


def init_weights(model: nn.Module) -> None:
    """The references' initialisation: Kaiming normal (fan out) convs, BN at identity."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
