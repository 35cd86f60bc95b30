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

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rtseg.errors import CheckpointError
from rtseg.models._layers import PyramidPooling, conv_bn_act, resize_to
from rtseg.models._pretrained import checkpoint_state_dict
from rtseg.models._resnet import DilatedResNet50


class CascadeFeatureFusion(nn.Module):
    """CFF: upsample the coarse features 2x (to the fine map's size), 3x3 conv with dilation 2,
    add the 1x1-projected fine features, ReLU. Also classifies the upsampled coarse features
    (the auxiliary output used for label guidance)."""

    def __init__(self, coarse: int, fine: int, out: int, num_classes: int) -> None:
        super().__init__()
        self.coarse = conv_bn_act(coarse, out, 3, dilation=2, act=None)
        self.fine = conv_bn_act(fine, out, 1, act=None)
        self.classifier = nn.Conv2d(coarse, num_classes, 1)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        up = resize_to(coarse, fine.shape[-2:])
        return F.relu(self.coarse(up) + self.fine(fine)), self.classifier(up)


class ICNet(nn.Module):
    """ICNet (see the module docstring).

    Args:
        num_classes: output classes.
        filter_scale: width multiplier of every layer (0.5 gives the compressed ICNet's widths).
        backbone_weights: None, "imagenet" (torchvision ResNet50, filter_scale 1 only) or a file.
        pspnet_weights: PSPNet50 weights to initialise the trunk from (two-stage training, as in
            the reference walkthrough): an rtseg checkpoint (path or shipped name) or a PSPNet50
            state dict.
    """

    def __init__(self, num_classes: int, filter_scale: float = 1.0, backbone_weights: str | None = None,
                 pspnet_weights: str | Path | Mapping[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        c = lambda n: max(1, int(round(n * filter_scale)))  # noqa: E731
        self.trunk = DilatedResNet50(width=filter_scale, weights=backbone_weights)
        c2, c4 = self.trunk.channels[1], self.trunk.channels[3]
        self.ppm = PyramidPooling(reduce=False)  # summed, as in the reference
        self.sub4_reduce = conv_bn_act(c4, c(256), 1)  # conv5_4_k1
        self.sub1 = nn.Sequential(conv_bn_act(3, c(32), 3, stride=2), conv_bn_act(c(32), c(32), 3, stride=2),
                                  conv_bn_act(c(32), c(64), 3, stride=2))
        self.cff_16 = CascadeFeatureFusion(c(256), c2, c(128), num_classes)
        self.cff_8 = CascadeFeatureFusion(c(128), c(64), c(128), num_classes)
        self.classifier = nn.Conv2d(c(128), num_classes, 1)
        if pspnet_weights is not None:
            self._init_from_pspnet(pspnet_weights)

    def _init_from_pspnet(self, weights: str | Path | Mapping[str, torch.Tensor]) -> None:
        # A checkpoint is read by the models' one checkpoint reader; ICNet only picks the trunk.
        state = weights if isinstance(weights, Mapping) else checkpoint_state_dict(weights, "pspnet50", "pspnet_weights")
        trunk = {k[len("trunk."):]: v for k, v in state.items() if k.startswith("trunk.")}
        try:
            self.trunk.load_state_dict(trunk, strict=True)
        except RuntimeError as e:  # missing keys or other shapes: say so in one line
            raise CheckpointError(f"pspnet_weights: not a PSPNet50 trunk at filter_scale {self.trunk.width}: "
                                  f"{str(e).strip().splitlines()[0]}") from None

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.trunk.set_grad_checkpointing(enabled)

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """The three classifiers keep their (class) channels."""
        return [self.classifier, self.cff_16.classifier, self.cff_8.classifier]

    def forward(self, x: torch.Tensor):
        h, w = x.shape[-2:]
        t = self.trunk
        half = resize_to(x, ((h + 1) // 2, (w + 1) // 2))  # (N, 3, H/2, W/2)
        f = t.run(t.layer1, t.stem(half))  # (N, 256w, H/8, W/8)
        f16 = t.run(t.layer2[:1], f)  # conv3_1: (N, 512w, H/16, W/16)
        f32 = resize_to(f16, ((f16.shape[-2] + 1) // 2, (f16.shape[-1] + 1) // 2))  # (N, 512w, H/32, W/32)
        f32 = t.run(t.layer4, t.run(t.layer3, t.run(t.layer2[1:], f32)))  # (N, 2048w, H/32, W/32)
        f32 = self.sub4_reduce(self.ppm(f32))  # (N, 256w, H/32, W/32)
        f8 = self.sub1(x)  # (N, 64w, H/8, W/8)
        y16, aux16 = self.cff_16(f32, f16)  # (N, 128w, H/16, W/16), (N, C, H/16, W/16)
        y8, aux8 = self.cff_8(y16, f8)  # (N, 128w, H/8, W/8), (N, C, H/8, W/8)
        out4 = self.classifier(resize_to(y8, (2 * y8.shape[-2], 2 * y8.shape[-1])))  # (N, C, H/4, W/4)
        if self.training:
            return {"out": out4, "aux1": aux16, "aux2": aux8}
        return resize_to(out4, (h, w))


def icnet(num_classes: int, filter_scale: float = 1.0, backbone_weights: str | None = None,
          pspnet_weights: str | Path | Mapping[str, torch.Tensor] | None = None) -> ICNet:
    """ICNet with a dilated ResNet50 trunk; ``filter_scale=0.5`` for the compressed widths."""
    return ICNet(num_classes, filter_scale, backbone_weights, pspnet_weights)
