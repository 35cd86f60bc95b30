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

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
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


class BinaryPRCurve:
    """Precision/recall of one class's probability over fixed thresholds, accumulated as
    histograms (as the KITTI Road devkit does): MaxF (best F1 over thresholds) and AP.

    ``update(prob, target)``: ``prob`` the class probability in [0, 1], ``target`` labels where
    ``positive`` marks the class; ignored pixels are skipped. AP is the devkit's: the mean over
    recall levels 0, 0.1, ..., 1 of the best precision at a recall at least that level.
    """

    def __init__(self, positive: int = 1, num_thresholds: int = 256, ignore_index: int = IGNORE_INDEX,
                 device: torch.device | str | None = None) -> None:
        self.positive = positive
        self.ignore_index = ignore_index
        self.bins = num_thresholds
        self.pos = torch.zeros(num_thresholds, dtype=torch.int64, device=device)
        self.neg = torch.zeros(num_thresholds, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, prob: torch.Tensor, target: torch.Tensor) -> None:
        valid = target != self.ignore_index
        b = (prob[valid].float().clamp(0, 1) * (self.bins - 1)).round().long().to(self.pos.device)
        is_pos = (target[valid] == self.positive).to(self.pos.device)
        self.pos += torch.bincount(b[is_pos], minlength=self.bins)
        self.neg += torch.bincount(b[~is_pos], minlength=self.bins)

    def all_reduce(self) -> None:
        """Sum the histograms of all processes (no-op outside torch.distributed)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.pos)
            dist.all_reduce(self.neg)

    def compute(self) -> dict:
        # Predicted positive at threshold t: every pixel whose bin is >= t.
        tp = self.pos.flip(0).cumsum(0).flip(0).double().cpu()
        fp = self.neg.flip(0).cumsum(0).flip(0).double().cpu()
        total_pos = float(self.pos.sum())
        if total_pos == 0:
            return {"max_f": math.nan, "average_precision": math.nan, "best_threshold": math.nan}
        precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp(min=1), torch.ones_like(tp))
        recall = tp / total_pos
        f = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                        torch.zeros_like(tp))
        best = int(f.argmax())
        ap = 0.0
        for level in torch.linspace(0, 1, 11, dtype=torch.float64):
            mask = recall >= level - 1e-12
            ap += float(precision[mask].max()) if mask.any() else 0.0
        return {"max_f": float(f[best]), "average_precision": ap / 11,
                "best_threshold": best / (self.bins - 1),
                "precision_at_max_f": float(precision[best]), "recall_at_max_f": float(recall[best])}
