"""ICNet: ICNet for Real-Time Semantic Segmentation on High-Resolution Images (Zhao et al., ECCV 2018).

https://arxiv.org/abs/1704.08545

Three branches: the 1/2-scale image runs a dilated ResNet50 up to conv3_1 (1/16 of the input);
those features, downsampled 2x (1/32), continue through the rest of the trunk and a pyramid
pooling module (bins 1, 2, 3, 6, summed as in the reference implementation); the full image runs
three stride-2 3x3 convs (1/8). Cascade feature fusion units merge 1/32 into 1/16 and 1/16 into
1/8; the result is upsampled 2x and classified at 1/4. In training the model returns the
cascade's three outputs for cascade label guidance: ``aux1`` (1/16), ``aux2`` (1/8) and ``out``
(1/4); the loss weights them (0.4, 0.4, 1.0 in configs/icnet_camvid.yaml). In eval, the 1/4
output upsampled to the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtseg.checkpoint import load_checkpoint
from rtseg.errors import CheckpointError
from rtseg.models._resnet import DilatedResNet50


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k // 2),
                                         dilation=dilation, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class _SumPyramidPooling(nn.Module):
    """ICNet's pyramid pooling: x + sum of upsampled average pools over bins 1, 2, 3, 6."""

    def __init__(self, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for b in self.bins:
            out = out + _resize(F.adaptive_avg_pool2d(x, b), x.shape[-2:])
        return out


class CascadeFeatureFusion(nn.Module):
    """CFF: upsample the coarse features 2x (to the fine map's size), 3x3 conv with dilation 2,
    add the 1x1-projected fine features, ReLU. Also classifies the upsampled coarse features
    (the auxiliary output used for label guidance)."""

    def __init__(self, coarse: int, fine: int, out: int, num_classes: int) -> None:
        super().__init__()
        self.coarse = _conv_bn(coarse, out, 3, dilation=2, relu=False)
        self.fine = _conv_bn(fine, out, 1, relu=False)
        self.classifier = nn.Conv2d(coarse, num_classes, 1)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        up = _resize(coarse, fine.shape[-2:])
        return F.relu(self.coarse(up) + self.fine(fine)), self.classifier(up)


class ICNet(nn.Module):
    """ICNet (see the module docstring).

    Args:
        num_classes: output classes.
        filter_scale: width multiplier of every layer (0.5 gives the compressed ICNet's widths).
        backbone_weights: None, "imagenet" (torchvision ResNet50, filter_scale 1 only) or a file.
        pspnet_weights: an rtseg PSPNet50 checkpoint to initialise the trunk from (two-stage
            training, as in the reference walkthrough).
    """

    def __init__(self, num_classes: int, filter_scale: float = 1.0, backbone_weights: str | None = None,
                 pspnet_weights: str | None = None) -> None:
        super().__init__()
        c = lambda n: max(1, int(round(n * filter_scale)))  # noqa: E731
        self.trunk = DilatedResNet50(width=filter_scale, weights=backbone_weights)
        c2, c4 = self.trunk.channels[1], self.trunk.channels[3]
        self.ppm = _SumPyramidPooling()
        self.sub4_reduce = _conv_bn(c4, c(256), 1)  # conv5_4_k1
        self.sub1 = nn.Sequential(_conv_bn(3, c(32), 3, stride=2), _conv_bn(c(32), c(32), 3, stride=2),
                                  _conv_bn(c(32), c(64), 3, stride=2))
        self.cff_16 = CascadeFeatureFusion(c(256), c2, c(128), num_classes)
        self.cff_8 = CascadeFeatureFusion(c(128), c(64), c(128), num_classes)
        self.classifier = nn.Conv2d(c(128), num_classes, 1)
        if pspnet_weights is not None:
            self._init_from_pspnet(pspnet_weights)

    def _init_from_pspnet(self, path: str) -> None:
        ckpt = load_checkpoint(path)
        if ckpt["model"]["name"] != "pspnet50":
            raise CheckpointError(f"pspnet_weights: {path} holds a {ckpt['model']['name']!r} model, not pspnet50")
        trunk = {k[len("trunk."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("trunk.")}
        self.trunk.load_state_dict(trunk, strict=True)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.trunk.set_grad_checkpointing(enabled)

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """The three classifiers keep their (class) channels."""
        return [self.classifier, self.cff_16.classifier, self.cff_8.classifier]

    def forward(self, x: torch.Tensor):
        h, w = x.shape[-2:]
        t = self.trunk
        half = _resize(x, ((h + 1) // 2, (w + 1) // 2))  # (N, 3, H/2, W/2)
        f = t.run(t.layer1, t.stem(half))  # (N, 256w, H/8, W/8)
        f16 = t.run(t.layer2[:1], f)  # conv3_1: (N, 512w, H/16, W/16)
        f32 = _resize(f16, ((f16.shape[-2] + 1) // 2, (f16.shape[-1] + 1) // 2))  # (N, 512w, H/32, W/32)
        f32 = t.run(t.layer4, t.run(t.layer3, t.run(t.layer2[1:], f32)))  # (N, 2048w, H/32, W/32)
        f32 = self.sub4_reduce(self.ppm(f32))  # (N, 256w, H/32, W/32)
        f8 = self.sub1(x)  # (N, 64w, H/8, W/8)
        y16, aux16 = self.cff_16(f32, f16)  # (N, 128w, H/16, W/16), (N, C, H/16, W/16)
        y8, aux8 = self.cff_8(y16, f8)  # (N, 128w, H/8, W/8), (N, C, H/8, W/8)
        out4 = self.classifier(_resize(y8, (2 * y8.shape[-2], 2 * y8.shape[-1])))  # (N, C, H/4, W/4)
        if self.training:
            return {"out": out4, "aux1": aux16, "aux2": aux8}
        return _resize(out4, (h, w))


def icnet(num_classes: int, filter_scale: float = 1.0, backbone_weights: str | None = None,
          pspnet_weights: str | None = None) -> ICNet:
    """ICNet with a dilated ResNet50 trunk; ``filter_scale=0.5`` for the compressed widths."""
    return ICNet(num_classes, filter_scale, backbone_weights, pspnet_weights)
