"""Rebuilding pruned models: a checkpoint with ``model.pruned = true`` holds smaller layers than
the builder makes, so each layer is shrunk to the saved shapes before the weights load
(pruning itself is ``rtseg.compress``)."""

from __future__ import annotations

import torch
from torch import nn


def shrink_to_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Give every layer of a freshly built ``model`` the (smaller) shapes found in ``state`` so
    that ``load_state_dict(state, strict=True)`` works: conv / transposed conv channels (groups
    follow for depthwise convs), BatchNorm features and PReLU parameters."""
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        w = state.get(prefix + "weight")
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and w is not None and w.shape != module.weight.shape:
            depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
            if isinstance(module, nn.Conv2d):
                out_c = w.shape[0]
                module.groups = out_c if depthwise else module.groups
                in_c = w.shape[1] * module.groups
            else:  # ConvTranspose2d weight: (in, out / groups, k, k)
                in_c = w.shape[0]
                module.groups = in_c if depthwise else module.groups
                out_c = w.shape[1] * module.groups
            module.in_channels, module.out_channels = in_c, out_c
            module.weight = nn.Parameter(torch.empty_like(w))
            if module.bias is not None:
                module.bias = nn.Parameter(torch.empty(out_c))
        elif isinstance(module, nn.BatchNorm2d) and w is not None and w.shape[0] != module.num_features:
            n = w.shape[0]
            module.num_features = n
            module.weight = nn.Parameter(torch.empty(n))
            module.bias = nn.Parameter(torch.empty(n))
            module.running_mean = torch.zeros(n)
            module.running_var = torch.ones(n)
        elif isinstance(module, nn.PReLU) and w is not None and w.shape != module.weight.shape:
            module.num_parameters = w.shape[0]
            module.weight = nn.Parameter(torch.empty_like(w))
    return model
