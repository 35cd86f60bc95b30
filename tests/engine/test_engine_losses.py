"""rtseg.engine.losses: the distillation term of SegmentationLoss, OHEM cross-entropy, the
Lovasz-softmax term, and PIDNet's boundary losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rtseg import create_model
from rtseg.engine.distill import distillation_kl
from rtseg.engine.losses import SegmentationLoss, lovasz_softmax, ohem_cross_entropy


def test_the_loss_adds_the_term_only_with_a_teacher_and_a_weight():
    torch.manual_seed(2)
    logits, target = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8))
    teacher = torch.randn(2, 4, 8, 8).log_softmax(1)
    plain = SegmentationLoss()(logits, target)
    assert float(SegmentationLoss(distill_weight=0.0)(logits, target, teacher)) == pytest.approx(float(plain))
    with_kd = SegmentationLoss(distill_weight=2.0)(logits, target, teacher)
    assert float(with_kd) == pytest.approx(float(plain + 2 * distillation_kl(logits, teacher)), rel=1e-6)


def test_ohem_keeps_the_hard_pixels():
    # Four pixels; true-class probabilities about 0.99, 0.9, 0.5, 0.1 (two classes).
    margin = torch.tensor([4.6, 2.2, 0.0, -2.2])
    logits = torch.stack([margin, torch.zeros(4)], 0).view(1, 2, 1, 4)
    target = torch.zeros(1, 1, 4, dtype=torch.long)
    per_pixel = F.cross_entropy(logits, target, reduction="none").flatten()
    # thresh 0.7: the last two are hard; min_kept 1 does not widen that.
    got = ohem_cross_entropy(logits, target, None, 255, thresh=0.7, min_kept=1)
    assert got == pytest.approx(float(per_pixel[2:].mean()), rel=1e-5)
    # min_kept 3 widens to the three hardest.
    got = ohem_cross_entropy(logits, target, None, 255, thresh=0.7, min_kept=3)
    assert got == pytest.approx(float(per_pixel[1:].mean()), rel=1e-5)
    # Ignored pixels never count; class weights give a weighted mean.
    target2 = torch.tensor([[[0, 0, 255, 1]]])
    w = torch.tensor([1.0, 3.0])
    full = F.cross_entropy(logits, target2, weight=w, ignore_index=255, reduction="none").flatten()
    got = ohem_cross_entropy(logits, target2, w, 255, thresh=1.0, min_kept=1)
    assert got == pytest.approx(float(full[[0, 1, 3]].sum() / (1 + 1 + 3)), rel=1e-5)
    loss = SegmentationLoss(ohem_min_kept=1, ohem_thresh=0.7)
    assert loss(logits, target) == pytest.approx(float(per_pixel[2:].mean()), rel=1e-5)


def _one_minus_iou(pred: torch.Tensor, target: torch.Tensor, classes: int, ignore: int) -> float:
    """Mean over the classes in ``target`` of 1 - IoU, counted directly."""
    valid = target != ignore
    losses = []
    for c in range(classes):
        gt, pr = (target == c) & valid, (pred == c) & valid
        if gt.any():
            losses.append(1.0 - float((gt & pr).sum()) / float((gt | pr).sum()))
    return sum(losses) / len(losses)


def test_lovasz_is_one_minus_iou_at_hard_predictions_and_ignores_void():
    # At one-hot probabilities the Lovasz extension equals the Jaccard loss it extends.
    torch.manual_seed(0)
    target = torch.randint(0, 5, (2, 12, 16))
    target[0, :3] = 255  # void rows
    pred = torch.where(torch.rand(2, 12, 16) < 0.6, target.clamp(max=4), torch.randint(0, 5, (2, 12, 16)))
    logits = F.one_hot(pred, 5).permute(0, 3, 1, 2).float() * 60.0  # softmax: 0 or 1
    got = float(lovasz_softmax(logits, target, ignore_index=255))
    assert got == pytest.approx(_one_minus_iou(pred, target, 5, 255), abs=1e-5)
    assert float(lovasz_softmax(F.one_hot(target.clamp(max=4), 5).permute(0, 3, 1, 2).float() * 60.0,
                                target, ignore_index=255)) == pytest.approx(0.0, abs=1e-6)
    # A sixth class predicted somewhere but absent from the labels does not count as a class
    # (only the present ones do), though its wrong pixels lower the IoU of the classes they miss.
    pred6 = pred.clone()
    pred6[1, :2] = 5
    logits6 = F.one_hot(pred6, 6).permute(0, 3, 1, 2).float() * 60.0
    got6 = float(lovasz_softmax(logits6, target, ignore_index=255))
    assert got6 == pytest.approx(_one_minus_iou(pred6, target, 6, 255), abs=1e-5)
    assert got6 > got


def test_lovasz_reads_a_subgrid_beyond_its_pixel_budget_and_has_gradients():
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (1, 8, 8))
    # 64 pixels over a budget of 16: every second row and column, exactly.
    sub = lovasz_softmax(logits, target, max_pixels=16)
    assert sub.item() == pytest.approx(lovasz_softmax(logits[..., ::2, ::2], target[..., ::2, ::2]).item(), rel=1e-6)
    sub.backward()
    assert logits.grad[..., 1::2, :].abs().sum() == 0 and logits.grad[..., ::2, ::2].abs().sum() > 0
    # A batch of void only contributes nothing, and stays in the graph.
    void = lovasz_softmax(logits, torch.full((1, 8, 8), 255), ignore_index=255)
    assert void.item() == 0.0 and void.requires_grad


def test_the_loss_adds_the_lovasz_term_only_with_a_weight():
    torch.manual_seed(3)
    logits, target = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8))
    plain = SegmentationLoss()(logits, target)
    got = SegmentationLoss(lovasz_weight=0.5)(logits, target)
    assert float(got) == pytest.approx(float(plain + 0.5 * lovasz_softmax(logits, target)), rel=1e-6)
    assert float(got) > float(plain)


def test_pidnet_boundary_losses():
    from rtseg.engine.losses import balanced_bce, boundary_targets

    labels = torch.zeros(1, 12, 12, dtype=torch.long)
    labels[:, :, 6:] = 3  # one vertical edge between columns 5 and 6
    edges = boundary_targets(labels)[0, 0]
    assert edges[:, 4:8].all() and not edges[:, :4].any() and not edges[:, 8:].any()  # a 4-pixel band
    # Balanced BCE: both classes weigh the same in total, so predicting all-background is punished.
    all_background = balanced_bce(torch.full((1, 1, 12, 12), -5.0), edges[None, None])
    right = balanced_bce(torch.where(edges > 0, 5.0, -5.0)[None, None], edges[None, None])
    assert all_background > 10 * right
    model = create_model("pidnet_s", num_classes=4).train()
    out = model(torch.randn(2, 3, 48, 64))
    assert set(out) == {"out", "aux1", "boundary"} and out["boundary"].shape == (2, 1, 48, 64)
    target = torch.randint(0, 4, (2, 48, 64))
    with_boundary = SegmentationLoss(aux_weights=[0.4])(out, target)
    without = SegmentationLoss(aux_weights=[0.4])({k: v for k, v in out.items() if k != "boundary"}, target)
    assert with_boundary > without
