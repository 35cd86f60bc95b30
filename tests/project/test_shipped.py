"""The models shipped inside the package work offline, out of the box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import rtseg
from rtseg.checkpoint import SHIPPED_WEIGHTS
from rtseg.datasets import build_dataset
from rtseg.metrics import ConfusionMatrix

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "samples" / "camvid").glob("*.jpg"))
#: Shipped name -> architecture. Adding a shipped model means adding it here and to its tests.
SHIPPED = {"edanet-camvid": "edanet", "edanet-camvid-distilled": "edanet", "enet-camvid": "enet",
           "enet-camvid-distilled": "enet"}


def test_the_shipped_models_are_listed():
    assert rtseg.shipped_models() == sorted(SHIPPED)


def test_default_model_is_the_shipped_enet():
    assert rtseg.load_model().name == "enet"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_loads_offline_and_segments_a_street(name):
    seg = rtseg.load_model(name)
    assert seg.name == SHIPPED[name] and seg.num_classes == 11 and seg.class_names[0] == "Sky"
    # issue #19: a shipped model weighs under 5 MB
    assert (Path(rtseg.__file__).parent / "shipped" / SHIPPED_WEIGHTS[name]).stat().st_size < 5 * 2**20
    mask = seg.predict(SAMPLES[0])
    assert mask.shape == (360, 480)
    assert len(np.unique(mask)) >= 4  # a street scene, not a constant map


def test_predict_without_weights_uses_the_shipped_enet(tmp_path):
    r = rtseg.predict(REPO / "samples" / "camvid", tmp_path)
    assert len(list(tmp_path.glob("*_overlay.png"))) == len(SAMPLES) == r["images"]
    assert r["model"] == "enet"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_is_accurate_on_real_val_frames(camvid_root, name):
    seg = rtseg.load_model(name)
    ds = build_dataset("camvid", "val", camvid_root)
    cm = ConfusionMatrix(11)
    for i in range(0, len(ds), 20):
        image, label = ds.load(i)
        cm.update(torch.from_numpy(seg.predict(image)).long(), torch.from_numpy(label).long())
    m = cm.compute()
    assert m["pixel_accuracy"] > 0.8 and m["miou"] > 0.4, m
