"""The peer rtseg's ENet is timed against: ENet as davidtvs/PyTorch-ENet builds it.

Re-implemented (not copied) from ``models/enet.py`` of https://github.com/davidtvs/PyTorch-ENet
at commit e17d404e2f649a3476eabe39f8a05e5eb77c55fd (2021-05-10), the most starred PyTorch ENet.
Same modules, ops, attribute names (its checkpoints' state dicts load into this class) and
choices as its ``ENet(num_classes)`` with the default ``encoder_relu=False, decoder_relu=True``,
so that this runs at the peer's speed. Where it differs from the paper and from rtseg's ENet:

* initial block: the extension branch is a 3x3 stride-2 max-pool with padding 1 (not 2x2);
  then concatenation, BN and one activation;
* every activation is its own module: ``nn.PReLU()`` with a single shared slope in the encoder,
  ``nn.ReLU`` in the decoder; the 1x1 expansion of every bottleneck is followed by BN *and* an
  activation before the residual sum (and another after it); an asymmetric 5x1 / 1x5 pair has
  BN + activation after each of the two convolutions;
* downsampling: ``nn.MaxPool2d(2, 2, return_indices=True)``; the shortcut's extra channels are
  a fresh ``torch.zeros(n, c, h, w)`` tensor concatenated on every call (contiguous NCHW);
* upsampling: ``nn.MaxUnpool2d(2)`` and ``output_size=``; the extension branch's transposed
  convolution is 2x2 stride 2; its 1x1 expansion has BN but no activation;
* classifier: ``ConvTranspose2d(16, classes, 3, stride=2, padding=1, bias=False)`` called with
  ``output_size`` (the input size);
* spatial dropout 0.01 in stage 1 and 0.1 everywhere after it, decoder included (inert in eval).

Parameters: 348,924 + 144 x classes (:func:`peer_param_count`, from the layer table; 350,508 at
11 classes, the count of the original module), against rtseg's 360,274 at 11 classes (PReLU per
channel, 3x3 transposed convolutions in the upsampling bottlenecks). Checked against the original
(``tests/project/test_peer_enet.py`` has the counts): its state dict loads into :class:`PeerENet` with
``strict=True`` and the outputs are bit-identical (random weights and BN statistics, 360x480).
"""

from __future__ import annotations

import torch
from torch import nn


def _act(relu: bool) -> nn.Module:
    return nn.ReLU() if relu else nn.PReLU()  # PReLU(): one slope shared by all channels


def _cba(cin: int, cout: int, kernel, relu: bool, stride=1, padding=0, dilation=1, act=True) -> nn.Sequential:
    """Conv (no bias) + BN (+ activation), the peer's ``nn.Sequential`` unit."""
    layers = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
              nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, _act(relu)) if act else nn.Sequential(*layers)


class InitialBlock(nn.Module):
    def __init__(self, relu: bool = False) -> None:
        super().__init__()
        self.main_branch = nn.Conv2d(3, 13, 3, stride=2, padding=1, bias=False)
        self.ext_branch = nn.MaxPool2d(3, stride=2, padding=1)
        self.batch_norm = nn.BatchNorm2d(16)
        self.out_activation = _act(relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_activation(self.batch_norm(torch.cat((self.main_branch(x), self.ext_branch(x)), 1)))


class RegularBottleneck(nn.Module):
    def __init__(self, channels: int, padding: int = 1, dilation: int = 1, asymmetric: bool = False,
                 kernel_size: int = 3, dropout: float = 0.1, relu: bool = False) -> None:
        super().__init__()
        inner = channels // 4
        self.ext_conv1 = _cba(channels, inner, 1, relu)
        if asymmetric:
            self.ext_conv2 = nn.Sequential(
                *_cba(inner, inner, (kernel_size, 1), relu, padding=(padding, 0), dilation=dilation),
                *_cba(inner, inner, (1, kernel_size), relu, padding=(0, padding), dilation=dilation))
        else:
            self.ext_conv2 = _cba(inner, inner, kernel_size, relu, padding=padding, dilation=dilation)
        self.ext_conv3 = _cba(inner, channels, 1, relu)
        self.ext_regul = nn.Dropout2d(dropout)
        self.out_activation = _act(relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ext = self.ext_regul(self.ext_conv3(self.ext_conv2(self.ext_conv1(x))))
        return self.out_activation(x + ext)


class DownsamplingBottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, dropout: float, relu: bool = False) -> None:
        super().__init__()
        inner = cin // 4
        self.main_max1 = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.ext_conv1 = _cba(cin, inner, 2, relu, stride=2)
        self.ext_conv2 = _cba(inner, inner, 3, relu, padding=1)
        self.ext_conv3 = _cba(inner, cout, 1, relu)
        self.ext_regul = nn.Dropout2d(dropout)
        self.out_activation = _act(relu)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        main, indices = self.main_max1(x)
        ext = self.ext_regul(self.ext_conv3(self.ext_conv2(self.ext_conv1(x))))
        n, c_ext, h, w = ext.size()
        # As the peer: a new NCHW tensor (its dtype follows the input here, so bf16 runs too; the
        # peer's float32 zeros fail there).
        zeros = torch.zeros(n, c_ext - main.size(1), h, w, device=main.device, dtype=main.dtype)
        return self.out_activation(torch.cat((main, zeros), 1) + ext), indices


class UpsamplingBottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, dropout: float = 0.1, relu: bool = True) -> None:
        super().__init__()
        inner = cin // 4
        self.main_conv1 = _cba(cin, cout, 1, relu, act=False)
        self.main_unpool1 = nn.MaxUnpool2d(2)
        self.ext_conv1 = _cba(cin, inner, 1, relu)
        self.ext_tconv1 = nn.ConvTranspose2d(inner, inner, 2, stride=2, bias=False)
        self.ext_tconv1_bnorm = nn.BatchNorm2d(inner)
        self.ext_tconv1_activation = _act(relu)
        self.ext_conv2 = _cba(inner, cout, 1, relu, act=False)
        self.ext_regul = nn.Dropout2d(dropout)
        self.out_activation = _act(relu)

    def forward(self, x: torch.Tensor, indices: torch.Tensor, output_size) -> torch.Tensor:
        main = self.main_unpool1(self.main_conv1(x), indices, output_size=output_size)
        ext = self.ext_tconv1_activation(self.ext_tconv1_bnorm(self.ext_tconv1(self.ext_conv1(x),
                                                                               output_size=output_size)))
        return self.out_activation(main + self.ext_regul(self.ext_conv2(ext)))


#: Stages 2 and 3 after their first module: (name suffix, RegularBottleneck keyword arguments).
_STAGE23 = (("regular", {}), ("dilated", {"dilation": 2, "padding": 2}),
            ("asymmetric", {"asymmetric": True, "kernel_size": 5, "padding": 2}),
            ("dilated", {"dilation": 4, "padding": 4}), ("regular", {}),
            ("dilated", {"dilation": 8, "padding": 8}),
            ("asymmetric", {"asymmetric": True, "kernel_size": 5, "padding": 2}),
            ("dilated", {"dilation": 16, "padding": 16}))


class PeerENet(nn.Module):
    """``ENet(num_classes)`` of davidtvs/PyTorch-ENet: (N, 3, H, W) -> (N, classes, H, W) for H, W
    multiples of 8 (it has no padding of odd sizes)."""

    def __init__(self, num_classes: int, encoder_relu: bool = False, decoder_relu: bool = True) -> None:
        super().__init__()
        enc, dec = encoder_relu, decoder_relu
        self.initial_block = InitialBlock(relu=enc)
        self.downsample1_0 = DownsamplingBottleneck(16, 64, dropout=0.01, relu=enc)
        for i in range(1, 5):
            setattr(self, f"regular1_{i}", RegularBottleneck(64, dropout=0.01, relu=enc))
        self.downsample2_0 = DownsamplingBottleneck(64, 128, dropout=0.1, relu=enc)
        # Stage 2 is numbered 2_1..2_8, stage 3 3_0..3_7 (the peer's names).
        for stage, first in ((2, 1), (3, 0)):
            for i, (kind, kwargs) in enumerate(_STAGE23):
                setattr(self, f"{kind}{stage}_{first + i}", RegularBottleneck(128, relu=enc, **kwargs))
        self.upsample4_0 = UpsamplingBottleneck(128, 64, relu=dec)
        self.regular4_1 = RegularBottleneck(64, relu=dec)
        self.regular4_2 = RegularBottleneck(64, relu=dec)
        self.upsample5_0 = UpsamplingBottleneck(64, 16, relu=dec)
        self.regular5_1 = RegularBottleneck(16, relu=dec)
        self.transposed_conv = nn.ConvTranspose2d(16, num_classes, 3, stride=2, padding=1, bias=False)
        self._stage1 = [f"regular1_{i}" for i in range(1, 5)]
        self._stage23 = [f"{k}{s}_{f + i}" for s, f in ((2, 1), (3, 0)) for i, (k, _) in enumerate(_STAGE23)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        input_size = x.size()
        x = self.initial_block(x)
        size1 = x.size()
        x, idx1 = self.downsample1_0(x)
        for name in self._stage1:
            x = getattr(self, name)(x)
        size2 = x.size()
        x, idx2 = self.downsample2_0(x)
        for name in self._stage23:
            x = getattr(self, name)(x)
        x = self.regular4_2(self.regular4_1(self.upsample4_0(x, idx2, output_size=size2)))
        x = self.regular5_1(self.upsample5_0(x, idx1, output_size=size1))
        return self.transposed_conv(x, output_size=input_size)


def peer_param_count(num_classes: int) -> int:
    """The peer's parameters from its layer table alone (not from the modules above): conv weights
    (no biases), BN weight + bias (2 per channel), one slope per PReLU (encoder) and none per ReLU
    (decoder)."""
    def regular(c: int, k: int = 3, asym: bool = False, prelu: bool = True) -> int:
        i = c // 4
        middle = (2 * (i * i * k + 2 * i + prelu)) if asym else (i * i * k * k + 2 * i + prelu)
        return (c * i + 2 * i + prelu) + middle + (i * c + 2 * c + prelu) + prelu

    def down(cin: int, cout: int) -> int:
        i = cin // 4
        return (cin * i * 4 + 2 * i + 1) + (i * i * 9 + 2 * i + 1) + (i * cout + 2 * cout + 1) + 1

    def up(cin: int, cout: int) -> int:  # ReLU: no parameters
        i = cin // 4
        return (cin * cout + 2 * cout) + (cin * i + 2 * i) + (i * i * 4 + 2 * i) + (i * cout + 2 * cout)

    initial = 3 * 13 * 9 + 2 * 16 + 1
    stage1 = down(16, 64) + 4 * regular(64)
    # 8 bottlenecks per stage, 2 stages: 6 3x3 (regular or dilated: same count) + 2 asymmetric 5.
    stage23 = down(64, 128) + 2 * (6 * regular(128) + 2 * regular(128, 5, asym=True))
    decoder = up(128, 64) + 2 * regular(64, prelu=False) + up(64, 16) + regular(16, prelu=False)
    return initial + stage1 + stage23 + decoder + 16 * num_classes * 9
