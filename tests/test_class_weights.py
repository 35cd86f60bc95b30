"""rtseg.class_weights: class weights by hand and from the cache, the 1/ln(c + p) constant, the
statistics of rtseg datasets info, and the real CamVid's counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

import rtseg
from conftest import save_png
from rtseg.class_weights import compute_class_weights, label_statistics, weights_from_statistics
from rtseg.datasets import build_dataset
from rtseg.datasets.camvid import CLASSES as CAMVID_CLASSES
from rtseg.errors import RtsegError


def _two_image_camvid(root):
    """Image A: 6 px class 0, 2 px class 1; image B: 4 px class 0, 2 px class 2, 2 px void."""
    a = np.array([[0, 0, 0, 0], [0, 0, 1, 1]], np.uint8)
    b = np.array([[0, 0, 0, 0], [2, 2, 11, 11]], np.uint8)
    for split in ("train",):
        for name, lbl in (("a.png", a), ("b.png", b)):
            save_png(root / split / name, np.zeros((2, 4, 3), np.uint8))
            save_png(root / f"{split}annot" / name, lbl, "L")
    return root


def test_mfb_and_enet_by_hand(tmp_path):
    root = _two_image_camvid(tmp_path / "camvid")
    stats = label_statistics(build_dataset("camvid", "train", root), progress=False)
    assert stats["class_pixel_counts"][:3] == [10, 2, 2] and stats["ignored_pixels"] == 2
    # mfb: freq0 = 10/16, freq1 = 2/8 (only image A), freq2 = 2/8 (only image B, void counts).
    freq = np.array([10 / 16, 2 / 8, 2 / 8])
    w = weights_from_statistics(stats, "mfb")
    assert w[:3] == pytest.approx(list(np.median(freq) / freq))
    assert w[3:] == [0.0] * 8  # classes never seen get 0
    # enet: p = pixels / all 16 pixels of the split.
    assert weights_from_statistics(stats, "enet")[:3] == pytest.approx(
        [1 / np.log(1.02 + 10 / 16), 1 / np.log(1.02 + 2 / 16), 1 / np.log(1.02 + 2 / 16)])


def test_weights_by_raw_id_and_cache(tmp_path, monkeypatch):
    root = _two_image_camvid(tmp_path / "camvid")
    data = compute_class_weights("camvid", "train", "enet", root)
    assert data["method"] == "enet" and len(data["class_names"]) == len(data["weights"]) == 11
    assert len(data["weights_by_raw_id"]) == 12 and data["weights_by_raw_id"][11] == 0.0
    # A second call is served from the cache (the labels are not read again).
    monkeypatch.setattr("rtseg.class_weights.label_statistics", lambda *a, **k: pytest.fail("not cached"))
    again = compute_class_weights("camvid", "train", "enet", root)
    assert again["weights"] == data["weights"]


def test_real_camvid_counts_match_the_dataset_readme(camvid_root):
    w = compute_class_weights("camvid", "train", "mfb", camvid_root, progress=False)
    assert w["class_pixel_counts"] == [10682767, 14750079, 623349, 20076880, 2845085, 6166762, 743859,
                                       714595, 3719877, 405385, 184967]
    assert w["ignored_pixels"] == 2503995
    assert w["weights"][4] == pytest.approx(1.0)  # Pavement holds the median frequency
    assert min(w["weights"]) == w["weights"][3]  # Road is the most frequent class


def test_class_weight_constant():
    stats = {"class_pixel_counts": [10, 2, 2], "ignored_pixels": 2}
    p = np.array([10, 2, 2]) / 16
    assert weights_from_statistics(stats, "enet", 1.10) == pytest.approx(list(1 / np.log(1.10 + p)))
    assert weights_from_statistics(stats, "enet") == pytest.approx(list(1 / np.log(1.02 + p)))
    assert max(weights_from_statistics(stats, "enet", 1.10)) < 1 / math.log(1.10)
    with pytest.raises(RtsegError, match="c=1.0"):
        weights_from_statistics(stats, "enet", 1.0)


def test_dataset_info(tiny_camvid):
    info = rtseg.dataset_info("camvid", "train", tiny_camvid)
    labels = np.stack([np.asarray(Image.open(p)) for p in sorted((tiny_camvid / "trainannot").glob("*.png"))])
    assert info["num_images"] == 3 and info["class_names"] == list(CAMVID_CLASSES.names)
    assert info["class_pixel_counts"] == np.bincount(labels.ravel(), minlength=12)[:11].tolist()
    assert info["ignored_pixels"] == int((labels == 11).sum())
