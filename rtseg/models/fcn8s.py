"""FCN8s: Fully Convolutional Networks for Semantic Segmentation.

Long, Shelhamer, Darrell, CVPR 2015. https://arxiv.org/abs/1411.4038

The encoder's stride-32 features are scored (1x1 conv to the classes), upsampled 2x by a learned
transposed convolution, summed with the scores of the stride-16 features, upsampled 2x again,
summed with the scores of the stride-8 features, and upsampled 8x to the input. The transposed
convolutions start as bilinear upsampling. Two encoders:

* ``fcn8s``: VGG16 (torchvision's ``vgg16().features``), pool3 / pool4 / pool5, with fc6 and fc7
  as 7x7 and 1x1 convolutions (dropout after each), as in the paper.
* ``fcn8s_mobilenetv3``: MobileNetV3-Large (torchvision's ``mobilenet_v3_large().features``),
  the lighter front end recommended by the reference project.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import MobileNet_V3_Large_Weights, VGG16_Weights, mobilenet_v3_large, vgg16

from rtseg.models._pretrained import load_encoder_state_dict

#: Slices of torchvision's ``vgg16().features`` ending at pool3 (1/8), pool4 (1/16), pool5 (1/32).
_VGG_STAGES = (slice(0, 17), slice(17, 24), slice(24, 31))
#: Slices of ``mobilenet_v3_large().features`` ending at strides 8 (40 ch), 16 (112 ch), 32 (960 ch).
_MOBILENET_STAGES = (slice(0, 7), slice(7, 13), slice(13, 17))


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """(C, C, k, k) weights making a ConvTranspose2d a per-channel bilinear upsampler."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt1d[:, None] * filt1d[None, :]
    return weight


def _upsample_to(up: nn.ConvTranspose2d, x: torch.Tensor, size) -> torch.Tensor:
    """Transposed conv to exactly ``size`` (H, W). Floor-mode encoders (VGG's max-pools) leave the
    target up to stride-1 pixels larger than the natural output, which ``output_size`` covers;
    ceil-mode encoders (MobileNet's padded stride-2 convs) leave it smaller, and the extra
    bottom/right rows are dropped (both keep the top-left corner aligned)."""
    s, p, k = up.stride[0], up.padding[0], up.kernel_size[0]
    natural = [(n - 1) * s - 2 * p + k for n in x.shape[-2:]]
    out = up(x, output_size=[max(t, n) for t, n in zip(size, natural)])
    return out[..., : size[0], : size[1]]


def vgg16_fc_to_conv(fc6_weight: torch.Tensor, fc7_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """VGG16 classifier Linear weights -> fc6 (4096, 512, 7, 7) and fc7 (4096, 4096, 1, 1) convs.

    torchvision flattens pool5 (N, 512, 7, 7) channel-major, so a plain reshape is exact.
    """
    return fc6_weight.view(4096, 512, 7, 7), fc7_weight.view(4096, 4096, 1, 1)


class _VGG16Encoder(nn.Module):
    """(N, 3, H, W) -> pool3 (N, 256, H/8), pool4 (N, 512, H/16), fc7 (N, 4096, H/32)."""

    channels = (256, 512, 4096)

    def __init__(self, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = vgg16(weights=None).features  # torchvision's own layers and names
        self.fc6 = nn.Conv2d(512, 4096, 7, padding=3)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.drop6 = nn.Dropout2d(dropout)
        self.drop7 = nn.Dropout2d(dropout)

    def load_torchvision(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchvision ``vgg16`` state dict: ``features.*`` strictly, fc6/fc7 converted
        from ``classifier.0``/``classifier.3``; the 1000-class ``classifier.6`` is not used."""
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        self.features.load_state_dict(feats, strict=True)
        fc6, fc7 = vgg16_fc_to_conv(state["classifier.0.weight"], state["classifier.3.weight"])
        with torch.no_grad():
            self.fc6.weight.copy_(fc6)
            self.fc6.bias.copy_(state["classifier.0.bias"])
            self.fc7.weight.copy_(fc7)
            self.fc7.bias.copy_(state["classifier.3.bias"])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pool3 = self.features[_VGG_STAGES[0]](x)
        pool4 = self.features[_VGG_STAGES[1]](pool3)
        pool5 = self.features[_VGG_STAGES[2]](pool4)
        fc7 = self.drop7(F.relu(self.fc7(self.drop6(F.relu(self.fc6(pool5))))))
        return pool3, pool4, fc7


class _MobileNetV3Encoder(nn.Module):
    """(N, 3, H, W) -> (N, 40, H/8), (N, 112, H/16), (N, 960, H/32)."""

    channels = (40, 112, 960)

    def __init__(self) -> None:
        super().__init__()
        self.features = mobilenet_v3_large(weights=None).features
        # torchvision builds MobileNetV3 with BN momentum 0.01 for its 600-epoch ImageNet
        # schedule; in short segmentation runs the running statistics then lag far behind the
        # weights (eval-mode mIoU collapses), so use PyTorch's usual 0.1.
        for m in self.features.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1

    def load_torchvision(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchvision ``mobilenet_v3_large`` state dict (``features.*`` strictly)."""
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        self.features.load_state_dict(feats, strict=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c8 = self.features[_MOBILENET_STAGES[0]](x)
        c16 = self.features[_MOBILENET_STAGES[1]](c8)
        c32 = self.features[_MOBILENET_STAGES[2]](c16)
        return c8, c16, c32


class FCN8s(nn.Module):
    """FCN8s decoder over a three-scale encoder (https://arxiv.org/abs/1411.4038).

    Output is exactly the input size for any input of at least 32x32: each transposed
    convolution is sized to the feature map it is summed with (see :func:`_upsample_to`), so
    odd sizes work without the original Caffe model's 100-pixel padding and offset crops.
    Training mode returns ``{"out": logits}``.

    Args:
        encoder: module returning stride-8, 16 and 32 features with ``.channels``.
        num_classes: output classes.
        decoder_init: ``"bilinear"`` (the paper: zero score layers, bilinear upsampling) or
            ``"normal"`` (the reference TensorFlow project: score layers and transposed convs
            drawn from N(0, 0.001^2)).
    """

    def __init__(self, encoder: nn.Module, num_classes: int,
                 decoder_init: Literal["bilinear", "normal"] = "bilinear") -> None:
        super().__init__()
        c8, c16, c32 = encoder.channels
        self.encoder = encoder
        self.score32 = nn.Conv2d(c32, num_classes, 1)
        self.score16 = nn.Conv2d(c16, num_classes, 1)
        self.score8 = nn.Conv2d(c8, num_classes, 1)
        self.up32 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.up16 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.up8 = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4, bias=False)
        if decoder_init not in ("bilinear", "normal"):
            raise ValueError(f"decoder_init must be 'bilinear' or 'normal', got {decoder_init!r}")
        for score in (self.score32, self.score16, self.score8):
            if decoder_init == "normal":
                nn.init.normal_(score.weight, std=0.001)
            else:
                nn.init.zeros_(score.weight)
            nn.init.zeros_(score.bias)
        with torch.no_grad():
            for up in (self.up32, self.up16, self.up8):
                if decoder_init == "normal":
                    nn.init.normal_(up.weight, std=0.001)
                else:
                    up.weight.copy_(bilinear_kernel(num_classes, up.kernel_size[0]))

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """The class-score layers and the class-to-class upsamplers keep their channels."""
        return [self.score8, self.score16, self.score32, self.up8, self.up16, self.up32]

    def forward(self, x: torch.Tensor):
        f8, f16, f32 = self.encoder(x)
        s16 = self.score16(f16)  # (N, C, H/16, W/16)
        s8 = self.score8(f8)  # (N, C, H/8, W/8)
        y = _upsample_to(self.up32, self.score32(f32), s16.shape[-2:]) + s16
        y = _upsample_to(self.up16, y, s8.shape[-2:]) + s8
        logits = _upsample_to(self.up8, y, x.shape[-2:])  # (N, C, H, W)
        return {"out": logits} if self.training else logits


def _init_encoder(encoder: nn.Module, weights, source: str | None) -> None:
    if source is not None:
        encoder.load_torchvision(load_encoder_state_dict(weights, source))


def fcn8s(num_classes: int, backbone_weights: str | None = None, dropout: float = 0.5,
          decoder_init: Literal["bilinear", "normal"] = "bilinear") -> FCN8s:
    """FCN8s with a VGG16 encoder (about 134 M parameters for 21 classes).

    ``backbone_weights``: None (random), ``"imagenet"`` (torchvision's VGG16_Weights.IMAGENET1K_V1)
    or the path of a torchvision ``vgg16`` state dict file.
    """
    encoder = _VGG16Encoder(dropout)
    _init_encoder(encoder, VGG16_Weights.IMAGENET1K_V1, backbone_weights)
    return FCN8s(encoder, num_classes, decoder_init)


def fcn8s_mobilenetv3(num_classes: int, backbone_weights: str | None = None,
                      decoder_init: Literal["bilinear", "normal"] = "bilinear") -> FCN8s:
    """FCN8s with a MobileNetV3-Large encoder (torchvision's IMAGENET1K_V1 weights or a file)."""
    encoder = _MobileNetV3Encoder()
    _init_encoder(encoder, MobileNet_V3_Large_Weights.IMAGENET1K_V1, backbone_weights)
    return FCN8s(encoder, num_classes, decoder_init)


__all__ = ["FCN8s", "fcn8s", "fcn8s_mobilenetv3", "vgg16_fc_to_conv"]
