"""Dilated ResNet50 trunk shared by PSPNet and ICNet, built from torchvision's Bottleneck so that
at ``width=1`` its state dict is torchvision's ``resnet50`` (without ``fc``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.models import ResNet50_Weights
from torchvision.models.resnet import Bottleneck

from rtseg.models._layers import conv_bn_act
from rtseg.models._pretrained import load_encoder_state_dict


class DilatedResNet50(nn.Module):
    """ResNet50 with layer3 and layer4 dilated (2 and 4) instead of strided: output stride 8.

    Args:
        width: multiplies every layer's channels (ICNet's ``filter_scale``; 1 = torchvision's).
        weights: None, ``"imagenet"`` (torchvision's ResNet50_Weights.IMAGENET1K_V1; width 1
            only) or a path to a torchvision ``resnet50`` state dict file.
    """

    def __init__(self, width: float = 1.0, weights: str | None = None) -> None:
        super().__init__()
        self.width = width
        self.inplanes = self._c(64)
        self.dilation = 1
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, stride=2, dilate=True)
        self.layer4 = self._make_layer(512, 3, stride=2, dilate=True)
        del self.inplanes, self.dilation
        self.channels = (self._c(64) * 4, self._c(128) * 4, self._c(256) * 4, self._c(512) * 4)
        self.grad_checkpointing = False
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if weights is not None:
            if width != 1.0:
                raise ValueError(f"ImageNet weights exist only for width 1.0, not {width}")
            self.load_torchvision(load_encoder_state_dict(ResNet50_Weights.IMAGENET1K_V1, weights))

    def _c(self, channels: int) -> int:
        return max(1, int(round(channels * self.width)))

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        # torchvision's ResNet._make_layer with the width multiplier and dilation replacing stride.
        planes = self._c(planes)
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = conv_bn_act(self.inplanes, planes * 4, 1, stride=stride, act=None)
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, dilation=previous_dilation)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def load_torchvision(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchvision ``resnet50`` state dict strictly (its 1000-class ``fc`` is unused)."""
        self.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=True)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each bottleneck's activations in the backward pass (less memory)."""
        self.grad_checkpointing = enabled

    def run(self, blocks: nn.Sequential | list, x: torch.Tensor) -> torch.Tensor:
        """Run bottleneck blocks, checkpointed when enabled and training."""
        for block in blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64w, H/4, W/4)
