"""The model shipped inside the package works offline, out of the box."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import rtseg
from rtseg.datasets import build_dataset
from rtseg.metrics import ConfusionMatrix

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "samples" / "camvid").glob("*.jpg"))


def test_default_model_is_the_shipped_enet():
    seg = rtseg.load_model()
    assert seg.name == "enet" and seg.num_classes == 11 and seg.class_names[0] == "Sky"
    weights = Path(rtseg.__file__).parent / "shipped" / "enet_camvid.pt"
    assert weights.stat().st_size < 5 * 2**20
    mask = seg.predict(SAMPLES[0])
    assert mask.shape == (360, 480)
    assert len(np.unique(mask)) >= 4  # a street scene, not a constant map


def test_predict_without_weights_uses_the_shipped_model(tmp_path):
    r = rtseg.predict(REPO / "samples" / "camvid", tmp_path)
    assert len(list(tmp_path.glob("*_overlay.png"))) == len(SAMPLES) == r["images"]
    assert r["model"] == "enet" and rtseg.shipped_models() == ["enet-camvid"]


def test_shipped_model_is_accurate_on_real_val_frames(camvid_root):
    seg = rtseg.load_model("enet-camvid")
    ds = build_dataset("camvid", "val", camvid_root)
    cm = ConfusionMatrix(11)
    import torch

    for i in range(0, len(ds), 20):
        image, label = ds.load(i)
        cm.update(torch.from_numpy(seg.predict(image)).long(), torch.from_numpy(label).long())
    m = cm.compute()
    assert m["pixel_accuracy"] > 0.8 and m["miou"] > 0.4, m
