"""Fold BatchNorm into the convolution before it (inference only)."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) in which every ``Conv2d``/``ConvTranspose2d`` directly
    followed by a ``BatchNorm2d`` inside an ``nn.Sequential`` absorbs it (the BN becomes
    ``Identity``). That is the layout of ENet's and torchvision's conv blocks; a BN after
    something else (ENet's initial concatenation) is left as it is. Outputs are unchanged up to
    float rounding."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d) \
                    and bn.track_running_stats:
                module._modules[a] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                module._modules[b] = nn.Identity()
    return model


def count_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
