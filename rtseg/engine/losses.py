"""Segmentation loss: weighted cross-entropy on the main output plus weighted auxiliary outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtseg.constants import IGNORE_INDEX


def resize_labels(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) labels -> (N, h, w) by nearest neighbour (keeps the ignore index intact)."""
    if tuple(target.shape[-2:]) == tuple(size):
        return target
    return F.interpolate(target[:, None].float(), size=size, mode="nearest")[:, 0].long()


class SegmentationLoss(nn.Module):
    """Cross-entropy over a model's training outputs.

    ``outputs`` is the training dict of the model contract: ``"out"`` at the label resolution
    and optional ``"aux1"``, ``"aux2"``, ... (any resolution). Labels are resized with nearest to
    each auxiliary output (cascade label guidance, as in ICNet). The loss is
    ``CE(out) + sum_i aux_weights[i] * CE(aux{i+1})``.

    Args:
        class_weight: (C,) weights of the trainable classes, or None.
        aux_weights: weight of each auxiliary output in order.
    """

    def __init__(self, class_weight: torch.Tensor | None = None, aux_weights: list[float] | tuple = (),
                 ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.register_buffer("class_weight", class_weight, persistent=False)
        self.aux_weights = list(aux_weights)
        self.ignore_index = ignore_index

    def _ce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = resize_labels(target, tuple(logits.shape[-2:]))
        weight = None if self.class_weight is None else self.class_weight.to(logits.dtype)
        return F.cross_entropy(logits, target, weight=weight, ignore_index=self.ignore_index)

    def forward(self, outputs: dict[str, torch.Tensor] | torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            outputs = {"out": outputs}
        aux_keys = sorted(k for k in outputs if k.startswith("aux"))
        if len(aux_keys) != len(self.aux_weights):
            raise ValueError(f"the model returns auxiliary outputs {aux_keys} but loss.aux_weights "
                             f"has {len(self.aux_weights)} weights; give one weight per output")
        loss = self._ce(outputs["out"].float(), target)
        for key, w in zip(aux_keys, self.aux_weights):
            if w:
                loss = loss + w * self._ce(outputs[key].float(), target)
        return loss
