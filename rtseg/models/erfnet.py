"""ERFNet: Efficient Residual Factorized ConvNet for Real-Time Semantic Segmentation.

Romera, Alvarez, Bergasa, Arroyo, IEEE T-ITS 2018. https://doi.org/10.1109/TITS.2017.2750080
(code: https://github.com/Eromera/erfnet_pytorch)

Encoder: three downsampler blocks (a 3x3 stride-2 conv concatenated with a 2x2 max-pool of its
input, BN, ReLU) to 16, 64 and 128 channels; 5 "non-bottleneck-1D" residual blocks at 1/4 and 8
at 1/8 resolution (dilations 2, 4, 8, 16, twice). A non-bottleneck-1D block factorises each 3x3
conv into 3x1 + 1x3 (the second pair dilated). Decoder: transposed-conv upsamplers to 64 and
16 channels, each followed by 2 non-bottleneck-1D blocks, and a 2x2 stride-2 transposed conv to
the classes. Dropout 0.03 at 1/4 and 0.3 at 1/8 resolution, none in the decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtseg.models import _layers as layers

#: Three stride-2 stages: the network works on multiples of 8 internally.
_STRIDE = 8
#: The reference implementation's BatchNorm epsilon.
_BN_EPS = 1e-3


class _NonBottleneck1D(nn.Module):
    """Residual block at constant size: 3x1, ReLU, 1x3, BN, ReLU, then the same pair dilated,
    BN, dropout; added to the input and ReLU'd."""

    def __init__(self, channels: int, dropout: float, dilation: int = 1) -> None:
        super().__init__()
        d = dilation
        self.branch = nn.Sequential(
            nn.Conv2d(channels, channels, (3, 1), padding=(1, 0)),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, (1, 3), padding=(0, 1)),
            nn.BatchNorm2d(channels, eps=_BN_EPS),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, (3, 1), padding=(d, 0), dilation=(d, 1)),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, (1, 3), padding=(0, d), dilation=(1, d)),
            nn.BatchNorm2d(channels, eps=_BN_EPS),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.branch(x))


def _upsampler(cin: int, cout: int) -> nn.Sequential:
    """(N, Cin, H, W) -> (N, Cout, 2H, 2W): 3x3 stride-2 transposed conv, BN, ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(cout, eps=_BN_EPS),
        nn.ReLU(inplace=True),
    )


class ERFNet(nn.Module):
    """ERFNet (https://doi.org/10.1109/TITS.2017.2750080).

    Args:
        num_classes: output channels.
        encoder_dropout: dropout of the 1/8-resolution blocks (0.3 in the paper's Cityscapes
            training; the 1/4-resolution blocks use a tenth of it).

    Input (N, 3, H, W) of any size: zero-padded at the bottom and right to a multiple of 8 and
    the logits cropped back, so the output is (N, num_classes, H, W). In training mode the
    output is ``{"out": logits}``; in eval mode the logits tensor.
    """

    def __init__(self, num_classes: int, encoder_dropout: float = 0.3) -> None:
        super().__init__()
        self.num_classes = num_classes
        p = encoder_dropout
        self.encoder = nn.Sequential(
            layers.Downsampler(3, 16, _BN_EPS),  # (N, 16, H/2, W/2)
            layers.Downsampler(16, 64, _BN_EPS),  # (N, 64, H/4, W/4)
            *[_NonBottleneck1D(64, p / 10) for _ in range(5)],
            layers.Downsampler(64, 128, _BN_EPS),  # (N, 128, H/8, W/8)
            *[_NonBottleneck1D(128, p, d) for _ in range(2) for d in (2, 4, 8, 16)],
        )
        self.decoder = nn.Sequential(
            _upsampler(128, 64),  # (N, 64, H/4, W/4)
            _NonBottleneck1D(64, 0.0), _NonBottleneck1D(64, 0.0),
            _upsampler(64, 16),  # (N, 16, H/2, W/2)
            _NonBottleneck1D(16, 0.0), _NonBottleneck1D(16, 0.0),
        )
        self.classifier = nn.ConvTranspose2d(16, num_classes, 2, stride=2)  # (N, C, H, W)

    def pruning_ignored_layers(self) -> list[nn.Module]:
        """Layers whose output channels filter pruning must keep: everything that writes the
        channels shared by the residual sums and concatenations (downsamplers, upsamplers, each
        block's last conv) and the classifier. The blocks' inner convolutions are pruned."""
        keep: list[nn.Module] = [self.classifier]
        for module in self.modules():
            if isinstance(module, layers.Downsampler):
                keep.append(module.conv)
            elif isinstance(module, _NonBottleneck1D):
                keep.append(module.branch[7])
            elif isinstance(module, nn.ConvTranspose2d):
                keep.append(module)
        return keep

    def forward(self, x: torch.Tensor):
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % _STRIDE, 0, (-h) % _STRIDE))  # (N, 3, H8, W8)
        logits = self.classifier(self.decoder(self.encoder(x)))[..., :h, :w]  # (N, C, H, W)
        return {"out": logits} if self.training else logits


def erfnet(num_classes: int, encoder_dropout: float = 0.3) -> ERFNet:
    """ERFNet as in the paper."""
    return ERFNet(num_classes, encoder_dropout=encoder_dropout)
