"""rtseg.datasets.resize (rtseg datasets resize): a smaller copy in the same layout."""

from __future__ import annotations

import numpy as np
from PIL import Image

import rtseg
from rtseg.datasets import build_dataset


def test_datasets_resize_keeps_layout(tiny_camvid, tmp_path):
    out = tmp_path / "small"
    assert rtseg.resize_dataset("camvid", (12, 16), out, data_root=tiny_camvid) == 6  # train + val
    small = build_dataset("camvid", "val", out)
    image, label = small[0]
    assert image.shape == (3, 12, 16) and label.shape == (12, 16)
    orig = np.asarray(Image.open(tiny_camvid / "valannot" / "0001TP_000000.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(small.samples[0].label)), orig[1::2, 1::2])
