"""PSPNet50: Pyramid Scene Parsing Network (Zhao et al., CVPR 2017).

https://arxiv.org/abs/1612.01105

Dilated ResNet50 (output stride 8), a pyramid pooling module over bins 1, 2, 3 and 6
(adaptive average pooling, 1x1 conv, upsampling, concatenation:
:class:`rtseg.models._layers.PyramidPooling`), a 3x3 conv and a classifier;
an auxiliary classifier on layer3 for training. The baseline ICNet can be initialised from.
"""

from __future__ import annotations

import torch
from torch import nn

from rtseg.models._layers import PyramidPooling, conv_bn_act, resize_to
from rtseg.models._resnet import DilatedResNet50


class PSPNet(nn.Module):
    """PSPNet50. Training returns ``{"out": logits at input size, "aux1": layer3 logits (1/8)}``."""

    def __init__(self, num_classes: int, backbone_weights: str | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        self.trunk = DilatedResNet50(weights=backbone_weights)
        c3, c4 = self.trunk.channels[2], self.trunk.channels[3]
        self.ppm = PyramidPooling(c4)
        self.head = nn.Sequential(conv_bn_act(2 * c4, 512, 3), nn.Dropout2d(dropout), nn.Conv2d(512, num_classes, 1))
        self.aux_head = nn.Sequential(conv_bn_act(c3, 256, 3), nn.Dropout2d(dropout), nn.Conv2d(256, num_classes, 1))

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.trunk.set_grad_checkpointing(enabled)

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """The two classifiers keep their (class) channels."""
        return [self.head[-1], self.aux_head[-1]]

    def forward(self, x: torch.Tensor):
        t = self.trunk
        f = t.run(t.layer2, t.run(t.layer1, t.stem(x)))  # (N, 512, H/8, W/8)
        f3 = t.run(t.layer3, f)  # (N, 1024, H/8, W/8)
        f4 = t.run(t.layer4, f3)  # (N, 2048, H/8, W/8)
        logits = resize_to(self.head(self.ppm(f4)), x.shape[-2:])
        if self.training:
            return {"out": logits, "aux1": self.aux_head(f3)}
        return logits


def pspnet50(num_classes: int, backbone_weights: str | None = None, dropout: float = 0.1) -> PSPNet:
    """PSPNet with a dilated ResNet50; ``backbone_weights``: None, "imagenet" or a file."""
    return PSPNet(num_classes, backbone_weights, dropout)
