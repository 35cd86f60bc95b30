"""Size and cost of a network: parameters, inference parameters and FLOPs of one forward pass
(``rtseg models``, ``rtseg bench``, ``rtseg prune``'s before/after report)."""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, size: tuple[int, int], device: str | torch.device = "cpu") -> float:
    """Floating-point operations of one (1, 3, H, W) forward pass (a multiply-add counts 2), as
    counted by torch's FlopCounterMode (convolutions and matrix products). ``device="meta"``
    (a model built under ``torch.device("meta")``) counts from shapes alone, without computing:
    instant even for FCN8s-VGG16 at 1024x2048."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, *size, device=device))
    return float(counter.get_total_flops())


def inference_parameters(model: nn.Module, size: tuple[int, int] = (64, 96)) -> int:
    """Parameters of the modules an eval-mode forward pass uses: auxiliary, booster and
    boundary heads (training only) are left out. Traced on the meta device (no arithmetic)."""
    used: set[int] = set()
    hooks = [m.register_forward_hook(lambda mod, *_: used.add(id(mod))) for m in model.modules()]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *size, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    params = {id(p): p for m in model.modules() if id(m) in used for p in m.parameters(recurse=False)}
    return sum(p.numel() for p in params.values())
