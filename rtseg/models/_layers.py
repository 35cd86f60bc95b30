"""Building blocks that several networks share: bilinear resizing, conv-BN-activation stacks and
the pyramid pooling modules.

They build exactly the modules the networks built inline before (same classes, order and
``nn.Sequential`` indices), so every state-dict key, every shipped checkpoint and the seeded
initialisation stay as they were (tests/project/test_reference_outputs.py and the shipped-weights tests
hold them to it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: An activation factory: channels -> module (``relu``, ``prelu``), or None for no activation.
Activation = Callable[[int], nn.Module] | None


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False) to ``size`` (H, W), always an interpolation (so
    an exported graph keeps its Resize node whatever the sample input's size)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def resize(x: torch.Tensor, like: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False) to ``like``'s spatial size (a tensor or (H, W));
    ``x`` itself when it already has that size (the fusions of the dual-branch networks add
    tensors whose sizes often agree)."""
    size = tuple(like.shape[-2:]) if isinstance(like, torch.Tensor) else tuple(like)
    return x if tuple(x.shape[-2:]) == size else resize_to(x, size)


def relu(channels: int) -> nn.Module:
    return nn.ReLU(inplace=True)


def prelu(channels: int) -> nn.Module:
    return nn.PReLU(channels)


def conv_bn_act(cin: int, cout: int, kernel: int | tuple[int, int] = 3, stride: int = 1,
                padding: int | None = None, dilation: int = 1, groups: int = 1,
                act: Activation = relu) -> nn.Sequential:
    """``Sequential(Conv2d (no bias), BatchNorm2d[, act(cout)])``: indices 0, 1[, 2].

    ``padding`` None keeps the size at stride 1 for odd kernels (``dilation * (kernel // 2)``);
    pass it for anything else (ENet's 2x2 stride-2 projection uses 0)."""
    if padding is None:
        if not isinstance(kernel, int):
            raise ValueError(f"padding is needed for the non-square kernel {kernel}")
        padding = dilation * (kernel // 2)
    layers = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                        bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(cout))
    return nn.Sequential(*layers)


def bn_act_conv(cin: int, cout: int, kernel: int = 1, groups: int = 1) -> nn.Sequential:
    """Pre-activation ``Sequential(BatchNorm2d, ReLU, Conv2d (no bias))`` (the DDRNet/PIDNet
    pyramid pooling order)."""
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                         nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False))


class Downsampler(nn.Module):
    """(N, Cin, H, W) -> (N, Cout, H/2, W/2): a 3x3 stride-2 conv (with bias) to Cout - Cin
    channels concatenated with the 2x2 max-pooled input when the channels grow, else a conv to
    Cout; BN, ReLU (ENet's initial block as ERFNet and EDANet use it). Keys ``conv``, ``bn``."""

    def __init__(self, cin: int, cout: int, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.pool = cout > cin
        self.conv = nn.Conv2d(cin, cout - cin if self.pool else cout, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(cout, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pool:
            y = torch.cat([y, F.max_pool2d(x, 2, 2)], dim=1)
        return F.relu(self.bn(y))


class PyramidPooling(nn.Module):
    """Adaptive-bin pyramid pooling (PSPNet, ICNet): average pools over ``bins`` x ``bins``
    grids, each upsampled back to the input. Adaptive pooling works for any h, w (bins need not
    divide them) and exports to ONNX at a fixed size.

    ``reduce=True`` (PSPNet): each pool goes through a 1x1 conv-BN-ReLU to ``channels // 4``
    and the results are concatenated after the input: (N, C + len(bins) * C/4, h, w).
    ``reduce=False`` (ICNet, after the reference implementation): no parameters, the upsampled
    pools are added to the input: (N, C, h, w).
    """

    def __init__(self, channels: int | None = None, bins: tuple[int, ...] = (1, 2, 3, 6), reduce: bool = True) -> None:
        super().__init__()
        self.bins = bins
        self.reduce = reduce
        if reduce:
            if channels is None:
                raise ValueError("PyramidPooling(reduce=True) needs the input channels")
            self.stages = nn.ModuleList(conv_bn_act(channels, channels // 4, 1) for _ in bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.adaptive_avg_pool2d(x, b) for b in self.bins]
        if self.reduce:
            return torch.cat([x, *(resize_to(stage(p), size) for stage, p in zip(self.stages, pooled))], dim=1)
        out = x
        for p in pooled:
            out = out + resize_to(p, size)
        return out


class DeepAggregationPyramidPooling(nn.Module):
    """DDRNet's DAPPM (``parallel=False``) and PIDNet's PAPPM (``parallel=True``).

    Context at 1/2, 1/4, 1/8 of the input (average pools of 5, 9, 17 with strides 2, 4, 8) and
    global, each BN-ReLU-1x1 to ``branch`` channels and upsampled. DAPPM refines them in a
    cascade (each 3x3 conv sees the previous scale); PAPPM adds the full-resolution branch to
    each and refines them in one grouped 3x3 conv. Both end in a 1x1 compression plus a 1x1
    shortcut. The pools are fixed kernels and strides and the global pool a mean, so the module
    exports with any input size (no adaptive pooling with sizes that do not divide).
    """

    POOLS = ((5, 2, 2), (9, 4, 4), (17, 8, 8))  # (kernel, stride, padding)

    def __init__(self, cin: int, branch: int, cout: int, parallel: bool) -> None:
        super().__init__()
        self.parallel = parallel
        self.scale0 = bn_act_conv(cin, branch)
        self.pools = nn.ModuleList(nn.AvgPool2d(k, s, p) for k, s, p in self.POOLS)
        self.scales = nn.ModuleList(bn_act_conv(cin, branch) for _ in range(4))
        if parallel:
            self.process = bn_act_conv(4 * branch, 4 * branch, 3, groups=4)
        else:
            self.process = nn.ModuleList(bn_act_conv(branch, branch, 3) for _ in range(4))
        self.compression = bn_act_conv(5 * branch, cout)
        self.shortcut = bn_act_conv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [pool(x) for pool in self.pools] + [x.mean(dim=(2, 3), keepdim=True)]
        base = self.scale0(x)  # (N, branch, h, w)
        contexts = [resize(scale(p), base) for scale, p in zip(self.scales, pooled)]
        if self.parallel:
            feats = [base, self.process(torch.cat([c + base for c in contexts], 1))]
        else:
            feats = [base]
            for context, process in zip(contexts, self.process):
                feats.append(process(context + feats[-1]))
        return self.compression(torch.cat(feats, 1)) + self.shortcut(x)
