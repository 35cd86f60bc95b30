"""The from-scratch recipe's pieces: the scale set, 1/ln(c + p) class weights, OHEM
cross-entropy and the weight average (run.ema), with exact resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rtseg.checkpoint import load_checkpoint
from rtseg.class_weights import weights_from_statistics
from rtseg.config import load_config
from rtseg.datasets.transforms import RandomScaleCrop
from rtseg.engine.ema import ModelEMA
from rtseg.engine.losses import SegmentationLoss, ohem_cross_entropy
from rtseg.engine.train import fit
from rtseg.errors import ConfigError, RtsegError

REPO = Path(__file__).resolve().parents[1]


def _cfg(root: Path, out: Path, *extra: str):
    return load_config(REPO / "configs" / "enet_camvid_long.yaml", [
        f"data.data_root={root}", f"run.out_dir={out}", "data.train_split=train", "data.val_split=val",
        "data.crop=[64,96]", "data.batch_size=3", "data.val_batch_size=2", "run.progress=false",
        "run.image_summaries=0", "run.compile=false", "run.val_every=1", "schedule.warmup_epochs=1", *extra])


def test_scale_set_draws_only_its_scales():
    torch.manual_seed(0)
    t = RandomScaleCrop((8, 8), scales=(0.5, 2.0))
    image, label = torch.zeros(3, 40, 60, dtype=torch.uint8), torch.zeros(40, 60, dtype=torch.uint8)
    drawn = {t.draw_scale() for _ in range(200)}
    assert drawn == {0.5, 2.0}
    out, lab = t(image, label)
    assert out.shape == (3, 8, 8) and lab.shape == (8, 8)
    # A range still draws from the whole interval.
    r = RandomScaleCrop((8, 8), scale=(0.75, 1.5))
    values = [r.draw_scale() for _ in range(200)]
    assert 0.75 <= min(values) < 0.9 and 1.35 < max(values) <= 1.5


def test_class_weight_constant():
    stats = {"class_pixel_counts": [10, 2, 2], "ignored_pixels": 2}
    p = np.array([10, 2, 2]) / 16
    assert weights_from_statistics(stats, "enet", 1.10) == pytest.approx(list(1 / np.log(1.10 + p)))
    assert weights_from_statistics(stats, "enet") == pytest.approx(list(1 / np.log(1.02 + p)))
    assert max(weights_from_statistics(stats, "enet", 1.10)) < 1 / math.log(1.10)
    with pytest.raises(RtsegError, match="c=1.0"):
        weights_from_statistics(stats, "enet", 1.0)


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


def test_ema_averages_parameters_and_buffers():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.BatchNorm2d(1))
    ema = ModelEMA(net, decay=0.5)
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net(torch.randn(4, 1, 3, 3))  # BatchNorm statistics and counter move
    d = ema.current_decay()  # (1 + 0) / (10 + 0): the ramp
    assert d == pytest.approx(0.1)
    ema.update(net)
    for k, v in ema.module.state_dict().items():
        new = net.state_dict()[k]
        expected = new if not v.dtype.is_floating_point else d * start[k] + (1 - d) * new
        assert torch.allclose(v, expected), k
    assert ema.updates == 1 and not any(p.requires_grad for p in ema.module.parameters())


def test_ema_run_checkpoints_the_average_and_resumes_exactly(few_camvid, tmp_path):
    common = ("schedule.name=step", "schedule.step_epochs=1", "schedule.gamma=0.5", "schedule.warmup_epochs=0",
              "run.ema_decay=0.9")
    fit(_cfg(few_camvid, tmp_path / "straight", "schedule.epochs=2", *common))
    fit(_cfg(few_camvid, tmp_path / "resumed", "schedule.epochs=1", *common))
    fit(_cfg(few_camvid, tmp_path / "resumed", "schedule.epochs=2", *common), resume=True)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
        assert torch.equal(a["train_state"]["model"][key], b["train_state"]["model"][key]), key
    # The checkpoint's weights are the average, not the last step's.
    diffs = [float((a["state_dict"][k] - a["train_state"]["model"][k]).abs().max())
             for k in a["state_dict"] if a["state_dict"][k].dtype.is_floating_point]
    assert max(diffs) > 1e-4
    assert a["train_state"]["ema"]["updates"] == b["train_state"]["ema"]["updates"] > 0
    # The val figure in the checkpoint is the average's: best.pt holds the same weights.
    best = load_checkpoint(tmp_path / "straight" / "best.pt")
    assert best["metrics"] is not None and best["train_state"] is None
    # Resuming an EMA run without EMA (or the reverse) is refused.
    with pytest.raises(Exception, match="run.ema"):
        fit(_cfg(few_camvid, tmp_path / "resumed", "schedule.epochs=3", *common, "run.ema=false"), resume=True)


@pytest.mark.parametrize("override, message", [
    ("loss.class_weight_c=1.0", "loss.class_weight_c"),
    ("data.scales=[]", "data.scales"),
    ("data.scale=[2.0,1.0]", "data.scale"),
    ("loss.ohem_thresh=0", "loss.ohem"),
    ("run.ema_decay=1.0", "run.ema_decay"),
])
def test_recipe_options_are_checked(few_camvid, tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        fit(_cfg(few_camvid, tmp_path / "run", "schedule.epochs=1", override))
