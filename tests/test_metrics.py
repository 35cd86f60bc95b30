"""rtseg.metrics: confusion-matrix metrics, checked by hand and against the official Cityscapes
evaluator, and the binary precision-recall curve (KITTI Road's max-F and AP)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import save_png, write_cityscapes
from rtseg.constants import IGNORE_INDEX
from rtseg.datasets import build_dataset
from rtseg.metrics import BinaryPRCurve, ConfusionMatrix


def test_hand_computed_figures():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, IGNORE_INDEX, IGNORE_INDEX]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    m = cm.compute()
    # class 0: tp 1, fp 1 (a 2 predicted 0), fn 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: 1/2
    assert m["iou"][:3] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert math.isnan(m["iou"][3])  # absent from ground truth and prediction: left out of the mean
    assert m["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert m["pixel_accuracy"] == pytest.approx(4 / 6)
    assert m["mean_class_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)


def test_merge_equals_one_pass():
    g = torch.Generator().manual_seed(0)
    preds = [torch.randint(0, 5, (2, 8, 8), generator=g) for _ in range(4)]
    raw = [torch.randint(0, 6, (2, 8, 8), generator=g) for _ in range(4)]
    targets = [t.where(t < 5, torch.full_like(t, IGNORE_INDEX)) for t in raw]  # 5 plays void
    whole = ConfusionMatrix(5)
    for p, t in zip(preds, targets):
        whole.update(p, t)
    a, b = ConfusionMatrix(5), ConfusionMatrix(5)
    for i, (p, t) in enumerate(zip(preds, targets)):
        (a if i % 2 else b).update(p, t)
    a += b
    assert torch.equal(a.mat, whole.mat)


def test_target_outside_classes_is_an_error():
    with pytest.raises(ValueError, match="outside 0..2"):
        ConfusionMatrix(3).update(torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 3, 255]))


def test_agrees_with_official_cityscapes_evaluator(tmp_path):
    ev = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    from rtseg.datasets.cityscapes import train_ids_to_label_ids

    rng = np.random.default_rng(3)
    files = write_cityscapes(tmp_path / "cs", cities=("aachen", "bochum", "bremen"), h=24, w=40)
    # Make 'train' (id 31, train id 16) absent from both ground truth and prediction: the official
    # evaluator then leaves it out of the average, and so must we.
    for gt_path, label_ids in files:
        label_ids[label_ids == 31] = 26
        save_png(gt_path, label_ids, "L")
    ds = build_dataset("cityscapes", "val", tmp_path / "cs")
    cm = ConfusionMatrix(19)
    pred_files = []
    for i, sample in enumerate(ds.samples):
        _, target = ds[i]
        pred = target.clone()
        noise = torch.from_numpy(rng.random(target.shape) < 0.4)
        pred[noise] = torch.from_numpy(rng.choice([c for c in range(19) if c != 16], size=int(noise.sum())))
        pred[pred == IGNORE_INDEX] = torch.from_numpy(
            rng.choice([c for c in range(19) if c != 16], size=int((pred == IGNORE_INDEX).sum())))
        cm.update(pred, target)
        out = tmp_path / "results" / f"{sample.image.name.replace('_leftImg8bit.png', '')}_pred.png"
        save_png(out, train_ids_to_label_ids(pred.numpy()), "L")
        pred_files.append(str(out))

    args = ev.args
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    args.predictionPath = str(tmp_path / "results")
    args.predictionWalk = None
    gts = [str(s.label) for s in ds.samples]
    official = ev.evaluateImgLists([ev.getPrediction(args, g) for g in gts], gts, args)
    ours = cm.compute()
    names = ds.classes.names
    for name, iou in zip(names, ours["iou"]):
        theirs = official["classScores"][name]
        if math.isnan(iou):
            assert math.isnan(theirs), name
        else:
            assert iou == pytest.approx(theirs, abs=1e-9), name
    assert math.isnan(ours["iou"][16])
    assert ours["miou"] == pytest.approx(official["averageScoreClasses"], abs=1e-9)


def test_binary_pr_curve_by_hand():
    prob = torch.tensor([0.9, 0.8, 0.3, 0.2, 0.7, 0.1])
    target = torch.tensor([1, 1, 1, 0, 0, 255])
    pr = BinaryPRCurve(positive=1, num_thresholds=11)
    pr.update(prob, target)
    r = pr.compute()
    # thresholds 0.8: P=1, R=2/3 (F=0.8); 0.7: P=2/3, R=2/3; 0.3: P=3/4, R=1 (F=6/7)
    assert r["max_f"] == pytest.approx(6 / 7)
    assert r["best_threshold"] == pytest.approx(0.3)
    # recall levels 0..0.6 -> best precision 1; 0.7..1.0 -> 3/4
    assert r["average_precision"] == pytest.approx((7 * 1 + 4 * 0.75) / 11)
