"""rtseg.datasets.base: bad files (a missing folder or label, a label of another size, ids outside
the class table, an unreadable image, an RGB label) are one clear DatasetError."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import save_png
from rtseg.datasets import build_dataset
from rtseg.errors import DatasetError


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(DatasetError, match=f"{tmp_path / 'nowhere'}"):
        build_dataset("camvid", "train", tmp_path / "nowhere")


def test_image_without_label(tiny_camvid):
    (tiny_camvid / "trainannot" / "0001TP_000001.png").unlink()
    with pytest.raises(DatasetError, match=r"0001TP_000001.png has no label: expected .*trainannot"):
        build_dataset("camvid", "train", tiny_camvid)


def test_label_of_another_size(tiny_camvid):
    save_png(tiny_camvid / "trainannot" / "0001TP_000002.png", np.zeros((10, 10), np.uint8), "L")
    with pytest.raises(DatasetError, match=r"0001TP_000002.png is 10x10 .* 32x24"):
        build_dataset("camvid", "train", tiny_camvid)


def test_label_id_outside_class_table(tiny_camvid):
    lbl = np.zeros((24, 32), np.uint8)
    lbl[0, 0] = 40
    save_png(tiny_camvid / "trainannot" / "0001TP_000000.png", lbl, "L")
    ds = build_dataset("camvid", "train", tiny_camvid)
    with pytest.raises(DatasetError, match=r"0001TP_000000.png holds ids \[40\].*expected ids in 0-11"):
        ds[0]


def test_unreadable_image(tiny_camvid):
    (tiny_camvid / "train" / "0001TP_000000.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"cannot read .*0001TP_000000.png"):
        build_dataset("camvid", "train", tiny_camvid)


def test_rgb_label_is_rejected(tiny_camvid):
    save_png(tiny_camvid / "trainannot" / "0001TP_000000.png", np.zeros((24, 32, 3), np.uint8))
    ds = build_dataset("camvid", "train", tiny_camvid)
    with pytest.raises(DatasetError, match="mode RGB: expected a single-channel"):
        ds[0]
