"""One pass over a loader: ``train_one_epoch`` and ``evaluate_loader`` (in the style of
torchvision's references). ``rtseg.engine.train.fit`` runs them epoch after epoch;
``rtseg.evaluation.evaluate`` (``rtseg eval``) scores weights with ``evaluate_loader``."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from rtseg.checkpoint import unwrap
from rtseg.datasets.transforms import denormalize
from rtseg.engine.ema import ModelEMA
from rtseg.errors import TrainingDivergedError
from rtseg.metrics import BinaryPRCurve, ConfusionMatrix
from rtseg.progress import progress_bar
from rtseg.runtime import class_map, mixed_precision


def train_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
                    optimizer: torch.optim.Optimizer, device: torch.device, *,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                    scaler: torch.amp.GradScaler | None = None, amp: bool = False,
                    channels_last: bool = False, progress: bool = True, desc: str = "train",
                    ema: ModelEMA | None = None) -> dict:
    """One pass over ``loader``; ``scheduler`` (if any) steps every iteration, and so does the
    weight average ``ema`` (if any; it averages the plain module under ``model``'s wrappers).
    Returns ``{"loss": mean loss, "images": n, "seconds": t}``."""
    model.train()
    total_loss, n_images, n_batches, start = 0.0, 0, 0, time.perf_counter()
    bar = progress_bar(loader, desc=desc, unit="batch", progress=progress)
    for batch in bar:
        # (images, targets), or (images, targets, teacher maps) when distilling.
        images, targets = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        teacher = batch[2].to(device, non_blocking=True) if len(batch) > 2 else None
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with mixed_precision(device, amp):
            outputs = model(images)
            loss = loss_fn(outputs, targets) if teacher is None else loss_fn(outputs, targets, teacher)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"loss is {loss.item()} at {desc}, batch {n_batches + 1}: lower optim.lr "
                                        "or check the labels (last.pt holds the last finished epoch)")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update(unwrap(model))
        n = images.shape[0]
        n_batches += 1
        total_loss += loss.item() * n
        n_images += n
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{n_images / max(elapsed, 1e-9):.1f}",
                        lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    return {"loss": total_loss / max(n_images, 1), "images": n_images,
            "seconds": time.perf_counter() - start}


@torch.no_grad()
def evaluate_loader(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device, *,
             amp: bool = False, channels_last: bool = False, progress: bool = True,
             keep_samples: int = 0, desc: str = "eval", input_size: list[int] | None = None,
             pr_curve: BinaryPRCurve | None = None) -> tuple[dict, ConfusionMatrix, list]:
    """mIoU etc. over ``loader``. Returns (metrics, confusion matrix, up to ``keep_samples``
    (image uint8 HxWx3, target HxW, prediction HxW) triples for pictures).

    ``input_size``: run the network at this (H, W) and upsample its logits to the labels' size
    (evaluation at full resolution of a model trained smaller). ``pr_curve``: also accumulate
    the softmax probability of its positive class (KITTI Road MaxF / AP). ``model``: a network
    or any runner of the contract (a backend's, :mod:`rtseg.backends`)."""
    if isinstance(model, nn.Module):
        model.eval()
    cm = ConfusionMatrix(num_classes, device=device)
    samples: list = []
    for images, targets in progress_bar(loader, desc=desc, unit="batch", progress=progress):
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = targets.to(device, non_blocking=True)
        net_in = images
        if input_size is not None and tuple(input_size) != tuple(images.shape[-2:]):
            net_in = F.interpolate(images, size=tuple(input_size), mode="bilinear", align_corners=False,
                                   antialias=True)
        with mixed_precision(device, amp):
            logits = model(net_in)  # (N, C, h, w)
        if logits.shape[-2:] != targets.shape[-2:]:
            logits = F.interpolate(logits.float(), size=targets.shape[-2:], mode="bilinear", align_corners=False)
        pred = class_map(logits)  # (N, H, W)
        cm.update(pred, targets)
        if pr_curve is not None:
            pr_curve.update(logits.float().softmax(1)[:, pr_curve.positive], targets)
        for i in range(min(images.shape[0], keep_samples - len(samples))):
            samples.append((denormalize(images[i].float().cpu()).permute(1, 2, 0).numpy(),
                            targets[i].cpu().numpy().astype(np.uint8), pred[i].cpu().numpy().astype(np.uint8)))
    cm.all_reduce()
    if pr_curve is not None:
        pr_curve.all_reduce()
    return cm.compute(), cm, samples
