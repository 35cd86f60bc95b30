"""rtseg.datasets.folder: a folder dataset described by its dataset.yaml."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import random_image, save_png
from rtseg.constants import IGNORE_INDEX
from rtseg.datasets import build_dataset
from rtseg.errors import DatasetError


def write_folder(root: Path, ignore: int = 255) -> Path:
    rng = np.random.default_rng(1)
    (root).mkdir(parents=True, exist_ok=True)
    (root / "dataset.yaml").write_text(
        f"classes: [background, lane]\npalette: [[0, 0, 0], [255, 255, 0]]\nignore_index: {ignore}\n")
    for split in ("train", "val"):
        for i in range(2):
            save_png(root / "images" / split / f"f{i}.png", random_image(rng, 8, 8))
            mask = rng.integers(0, 2, (8, 8), dtype=np.uint8)
            mask[0, 0] = ignore
            save_png(root / "masks" / split / f"f{i}.png", mask, "L")
    return root


def test_folder_dataset(tmp_path):
    root = write_folder(tmp_path / "mine", ignore=7)
    ds = build_dataset("folder", "train", root)
    assert ds.classes.names == ("background", "lane") and ds.classes.palette[1] == (255, 255, 0)
    _, label = ds[0]
    assert label[0, 0] == IGNORE_INDEX and set(label.unique().tolist()) <= {0, 1, IGNORE_INDEX}


def test_folder_dataset_bad_spec(tmp_path):
    root = write_folder(tmp_path / "mine")
    (root / "dataset.yaml").write_text("classes: [a, b]\npalette: [[0, 0, 0]]\n")
    with pytest.raises(DatasetError, match="dataset.yaml: 'palette' must list one"):
        build_dataset("folder", "train", root)
