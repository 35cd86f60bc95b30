"""Segmentation loss: weighted cross-entropy on the main output plus weighted auxiliary outputs,
PIDNet's boundary losses for models that output boundaries, and optionally the Lovasz-softmax
surrogate of the IoU and a distillation term."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rtseg.constants import IGNORE_INDEX


def resize_labels(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) labels -> (N, h, w) by nearest neighbour (keeps the ignore index intact)."""
    if tuple(target.shape[-2:]) == tuple(size):
        return target
    return F.interpolate(target[:, None].float(), size=size, mode="nearest")[:, 0].long()


def boundary_targets(target: torch.Tensor) -> torch.Tensor:
    """(N, H, W) labels -> (N, 1, H, W) float {0, 1}: pixels whose 3x3 neighbourhood holds another
    label (void included), thickened by a 3x3 dilation: a band about 4 pixels wide along every
    label edge, like PIDNet's Canny edges of the label map dilated by a 4x4 kernel."""
    t = target[:, None].float()
    edge = (F.max_pool2d(t, 3, 1, 1) != -F.max_pool2d(-t, 3, 1, 1)).float()
    return F.max_pool2d(edge, 3, 1, 1)


def balanced_bce(logits: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with each class weighted by the other's share (PIDNet's weighted
    BCE): boundary pixels are rare, so they weigh as much in total as the rest."""
    pos = edges.sum()
    total = float(edges.numel())
    weight = torch.where(edges > 0.5, (total - pos) / total, pos / total)
    return F.binary_cross_entropy_with_logits(logits, edges, weight=weight)


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                       ignore_index: int, thresh: float, min_kept: int) -> torch.Tensor:
    """Cross-entropy averaged over the hard pixels only (online hard example mining, as in
    PSPNet's and BiSeNet's reference trainers): the pixels whose predicted probability of their
    true class is below ``thresh``, widened to the ``min_kept`` hardest when fewer are below it.
    With class weights the mean is weighted as in ``F.cross_entropy``.

    logits (N, C, H, W) float, target (N, H, W) long."""
    pixel_loss = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index,
                                 reduction="none").flatten()  # (N*H*W,), 0 at ignored pixels
    valid = (target != ignore_index).flatten()
    if not bool(valid.any()):
        return pixel_loss.sum() * 0.0
    labels = target.flatten()[valid]
    with torch.no_grad():
        # Probability of the true class: (N, C, H, W) -> (N*H*W, C) rows of the valid pixels.
        prob = logits.detach().softmax(1).permute(0, 2, 3, 1).reshape(-1, logits.shape[1])[valid]
        prob = prob.gather(1, labels[:, None])[:, 0]
        k = min(min_kept, prob.numel())
        cut = max(thresh, float(prob.kthvalue(k).values)) if k > 0 else thresh
        hard = prob <= cut
    kept = pixel_loss[valid][hard]
    if weight is None:
        return kept.mean()
    return kept.sum() / weight[labels[hard]].sum().clamp_min(1e-12)


#: About the most pixels the Lovasz term sorts per batch: beyond, it reads every k-th row and column. It
#: sorts each present class's errors over the batch's pixels, which costs far more than the
#: cross-entropy: forward and backward of 8 x 11 x 360 x 480 logits took 1.42 s at full resolution,
#: 0.25 s at every second pixel and the cross-entropy 0.08 s (2 cores of an AMD EPYC), so 360x480
#: batches of 8 run at stride 2, about a fifth more time per EDANet step.
LOVASZ_MAX_PIXELS = 2**19


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                   max_pixels: int = LOVASZ_MAX_PIXELS) -> torch.Tensor:
    """The Lovasz-softmax loss (Berman, Rannen Triki, Blaschko, CVPR 2018): for each class present
    in ``target``, the Lovasz extension of the Jaccard loss ``1 - IoU`` evaluated at the pixels'
    errors ``|1[label = c] - p_c|``, averaged over those classes; a convex surrogate of the
    batch's IoU that equals ``1 - IoU_c`` exactly where the probabilities are 0 or 1.

    logits (N, C, H, W), target (N, H, W) long; pixels at ``ignore_index`` do not count. Over
    ``max_pixels`` pixels it reads a regular subgrid (see :data:`LOVASZ_MAX_PIXELS`)."""
    n, c, h, w = logits.shape
    stride = max(1, math.ceil(math.sqrt(n * h * w / max_pixels)))
    if target.shape[-2:] != logits.shape[-2:]:
        target = resize_labels(target, (h, w))
    prob = logits[..., ::stride, ::stride].float().softmax(1)  # (N, C, h', w')
    prob = prob.permute(1, 0, 2, 3).reshape(c, -1)  # (C, P)
    labels = target[..., ::stride, ::stride].reshape(-1)  # (P,)
    valid = labels != ignore_index
    prob, labels = prob[:, valid], labels[valid]
    fg = (labels[None] == torch.arange(c, device=labels.device)[:, None]).to(prob.dtype)  # (C, P)
    present = fg.sum(1) > 0
    if not bool(present.any()):
        return logits.sum() * 0.0
    prob, fg = prob[present], fg[present]  # (K, P): the classes in the labels
    errors, order = (fg - prob).abs().sort(1, descending=True)
    fg = fg.gather(1, order)
    # The Jaccard loss of the first i errors' pixels as predicted wrong, for i = 1..P; its
    # increments are the extension's gradient (the paper's Algorithm 1).
    total = fg.sum(1, keepdim=True)
    jaccard = 1.0 - (total - fg.cumsum(1)) / (total + (1.0 - fg).cumsum(1))
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)
    return (errors * grad).sum(1).mean()


class SegmentationLoss(nn.Module):
    """Cross-entropy over a model's training outputs.

    ``outputs`` is the training dict of the model contract: ``"out"`` at the label resolution
    and optional ``"aux1"``, ``"aux2"``, ... (any resolution). Labels are resized with nearest to
    each auxiliary output (cascade label guidance, as in ICNet). The loss is
    ``CE(out) + sum_i aux_weights[i] * CE(aux{i+1})``.

    A model that also outputs ``"boundary"`` (PIDNet's D head: (N, 1, H, W) logits) adds the
    paper's two terms: ``boundary_weight * balanced_BCE(boundary, label edges)`` and
    ``boundary_ce_weight * CE(out)`` over the pixels the boundary head is confident about
    (sigmoid > 0.8), which sharpens the segmentation along edges.

    Args:
        class_weight: (C,) weights of the trainable classes, or None.
        aux_weights: weight of each auxiliary output in order.
        boundary_weight, boundary_ce_weight: PIDNet's 20 and 1.
        ohem_min_kept, ohem_thresh: hard-pixel mining of every cross-entropy term (see
            :func:`ohem_cross_entropy`); ``ohem_min_kept=0`` averages over all pixels.
        lovasz_weight: adds ``lovasz_weight * lovasz_softmax(out)`` (:func:`lovasz_softmax`),
            which the field uses beside the cross-entropy or to fine-tune, not alone from scratch.
        distill_weight, distill_temperature, distill_kind: with a teacher's map passed to
            ``forward``, add ``distill_weight * T^2 * KL(teacher_T || out_T)`` per pixel
            (``pixel``: :func:`rtseg.engine.distill.distillation_kl`) or per class over the
            pixels (``channel``: :func:`rtseg.engine.distill.channel_distillation_kl`).
    """

    def __init__(self, class_weight: torch.Tensor | None = None, aux_weights: list[float] | tuple = (),
                 ignore_index: int = IGNORE_INDEX, boundary_weight: float = 20.0,
                 boundary_ce_weight: float = 1.0, ohem_min_kept: int = 0, ohem_thresh: float = 0.7,
                 distill_weight: float = 0.0, distill_temperature: float = 1.0,
                 distill_kind: str = "pixel", lovasz_weight: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("class_weight", class_weight, persistent=False)
        self.aux_weights = list(aux_weights)
        self.ignore_index = ignore_index
        self.boundary_weight = boundary_weight
        self.boundary_ce_weight = boundary_ce_weight
        self.ohem_min_kept = ohem_min_kept
        self.ohem_thresh = ohem_thresh
        self.distill_weight = distill_weight
        self.distill_temperature = distill_temperature
        if distill_kind not in ("pixel", "channel"):
            raise ValueError(f"distill_kind: expected pixel or channel, got {distill_kind!r}")
        self.distill_kind = distill_kind
        self.lovasz_weight = lovasz_weight

    def _ce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = resize_labels(target, tuple(logits.shape[-2:]))
        weight = None if self.class_weight is None else self.class_weight.to(logits.dtype)
        if self.ohem_min_kept:
            return ohem_cross_entropy(logits, target, weight, self.ignore_index, self.ohem_thresh,
                                      self.ohem_min_kept)
        return F.cross_entropy(logits, target, weight=weight, ignore_index=self.ignore_index)

    def forward(self, outputs: dict[str, torch.Tensor] | torch.Tensor, target: torch.Tensor,
                teacher: torch.Tensor | None = None) -> torch.Tensor:
        """``teacher``: (N, C, H, W) log-probabilities of a distillation teacher (NaN where it
        has none), or None."""
        if isinstance(outputs, torch.Tensor):
            outputs = {"out": outputs}
        aux_keys = sorted(k for k in outputs if k.startswith("aux"))
        if len(aux_keys) != len(self.aux_weights):
            raise ValueError(f"the model returns auxiliary outputs {aux_keys} but loss.aux_weights "
                             f"has {len(self.aux_weights)} weights; give one weight per output")
        # Contiguous (NCHW) float32 logits: log-softmax over the channels of a channels-last
        # tensor is 5x slower on the CPU (ENet, 4x11x360x480: 30 against 6 ms).
        logits = outputs["out"].float().contiguous()
        loss = self._ce(logits, target)
        for key, w in zip(aux_keys, self.aux_weights):
            if w:
                loss = loss + w * self._ce(outputs[key].float().contiguous(), target)
        if "boundary" in outputs:
            boundary = outputs["boundary"].float()  # (N, 1, H, W) logits
            labels = resize_labels(target, tuple(boundary.shape[-2:]))
            loss = loss + self.boundary_weight * balanced_bce(boundary, boundary_targets(labels))
            confident = torch.sigmoid(boundary[:, 0].detach()) > 0.8
            edge_labels = torch.where(confident, labels, torch.full_like(labels, self.ignore_index))
            if self.boundary_ce_weight and bool((edge_labels != self.ignore_index).any()):
                loss = loss + self.boundary_ce_weight * self._ce(logits, edge_labels)
        if self.lovasz_weight:
            loss = loss + self.lovasz_weight * lovasz_softmax(logits, target, self.ignore_index)
        if teacher is not None and self.distill_weight:
            from rtseg.engine.distill import channel_distillation_kl, distillation_kl

            kl = channel_distillation_kl if self.distill_kind == "channel" else distillation_kl
            loss = loss + self.distill_weight * kl(logits, teacher, self.distill_temperature)
        return loss
