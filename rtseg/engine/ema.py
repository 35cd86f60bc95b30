"""Exponential moving average of a network's weights (``run.ema``).

The average of the weights over the last ~1/(1 - decay) steps is a better network than the last
step's, as long as training is noisy (small batches, high learning rates): the usual result in
segmentation and classification recipes (timm's ``ModelEmaV3``, YOLO, mmseg's EMA hook). BatchNorm
statistics are averaged the same way, so the averaged network is complete and evaluates as is.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """``ema = d * ema + (1 - d) * w`` after every optimiser step, for every floating-point
    parameter and buffer (integer buffers, e.g. BatchNorm's batch counter, are copied).

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first updates ``n``, so the
    random initialisation is forgotten within the first few hundred steps instead of lingering
    for 1/(1 - decay) of them. ``module`` is the averaged network (eval mode, no gradients).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay {decay}: expected a number between 0 and 1")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for avg, new in zip(self.module.state_dict().values(), model.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(new.detach(), 1.0 - d)
            else:
                avg.copy_(new)
        self.updates += 1

    def state(self) -> dict:
        """What resuming needs besides the averaged weights themselves."""
        return {"updates": self.updates, "decay": self.decay}

    def load(self, state_dict: dict, state: dict) -> None:
        self.module.load_state_dict(state_dict)
        self.updates = int(state["updates"])
