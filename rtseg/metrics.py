"""Confusion-matrix segmentation metrics (per-class IoU, mIoU, pixel and class accuracy)."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from rtseg.constants import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulates a (C, C) confusion matrix on the device: rows ground truth, columns prediction.

    Pixels labelled ``ignore_index`` are skipped. :meth:`compute` follows the Cityscapes
    evaluator: a class absent from both ground truth and prediction has IoU NaN and is left out
    of the mean. Matrices from several processes are merged with :meth:`all_reduce` (DDP) or
    ``+=``.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 device: torch.device | str | None = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros((num_classes, num_classes), dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred`` and ``target``: integer tensors of the same shape, e.g. (N, H, W)."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        n = self.num_classes
        valid = target != self.ignore_index
        t = target[valid].long()
        p = pred.to(target.device)[valid].long()
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
            raise ValueError(f"target holds ids outside 0..{n - 1} that are not the ignore index "
                             f"{self.ignore_index}")
        self.mat += torch.bincount(t * n + p, minlength=n * n).view(n, n).to(self.mat.device)

    def reset(self) -> None:
        self.mat.zero_()

    def __iadd__(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        self.mat += other.mat.to(self.mat.device)
        return self

    def all_reduce(self) -> None:
        """Sum the matrices of all processes (no-op outside torch.distributed)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.mat)

    def compute(self) -> dict:
        """``{"iou": [C], "miou", "pixel_accuracy", "mean_class_accuracy", "class_accuracy": [C]}``
        as Python floats in [0, 1] (NaN for classes that never occur)."""
        m = self.mat.double().cpu()
        tp = m.diag()
        gt = m.sum(1)
        pred = m.sum(0)
        union = gt + pred - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
        acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, math.nan))
        total = m.sum()
        return {
            "iou": iou.tolist(),
            "miou": _nanmean(iou),
            "pixel_accuracy": float(tp.sum() / total) if total > 0 else math.nan,
            "class_accuracy": acc.tolist(),
            "mean_class_accuracy": _nanmean(acc),
        }


def _nanmean(x: torch.Tensor) -> float:
    valid = ~torch.isnan(x)
    return float(x[valid].mean()) if valid.any() else math.nan
