"""rtseg.datasets.convert (rtseg datasets convert): colour masks and Labelme exports become a
folder dataset that checks clean."""

from __future__ import annotations

import numpy as np

from conftest import random_image, save_png
from rtseg.cli import main
from rtseg.datasets.check import check_folder


def test_colour_masks_and_labelme_convert_to_a_dataset_that_checks_clean(tmp_path):
    import json

    from PIL import Image

    from rtseg.datasets.convert import convert

    # Colour-coded masks in CVAT's export layout, with its labelmap.txt.
    cvat = tmp_path / "cvat"
    rng = np.random.default_rng(0)
    colours = {"road": (128, 64, 128), "car": (0, 0, 142)}
    ids = rng.integers(0, 3, (12, 16))
    rgb = np.zeros((12, 16, 3), np.uint8)  # id 2 stays black: void
    for i, c in enumerate(colours.values()):
        rgb[ids == i] = c
    for i in range(2):
        save_png(cvat / "JPEGImages" / f"f{i}.png", random_image(rng, 12, 16))
        save_png(cvat / "SegmentationClass" / f"f{i}.png", rgb)
    (cvat / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                       "road:128,64,128::\ncar:0,0,142::\n")
    r = convert(cvat, tmp_path / "from_cvat", "colour", progress=False)
    assert r["splits"] == {"train": 2} and r["classes"] == ["road", "car"]
    mask = np.asarray(Image.open(tmp_path / "from_cvat" / "masks" / "train" / "f0.png"))
    assert (mask == np.where(ids == 2, 255, ids)).all()
    assert not check_folder(tmp_path / "from_cvat").errors
    # A colour in no class: an error naming the file and the colour, and nothing written.
    rgb[0, 0] = (1, 2, 3)
    save_png(cvat / "SegmentationClass" / "f1.png", rgb)
    import pytest

    from rtseg.errors import DatasetError

    with pytest.raises(DatasetError, match=r"f1.png has colours in no class: \[\(1, 2, 3\)\]"):
        convert(cvat, tmp_path / "half", "colour", progress=False)
    assert not (tmp_path / "half").exists() and not list(tmp_path.glob(".half.*"))

    # Labelme: a polygon and a rectangle per image, in split folders.
    lm = tmp_path / "labelme"
    for split in ("train", "val"):
        save_png(lm / split / "a.png", random_image(rng, 20, 30))
        doc = {"imagePath": "a.png", "imageHeight": 20, "imageWidth": 30, "shapes": [
            {"label": "road", "shape_type": "polygon", "points": [[0, 19], [29, 19], [15, 10]]},
            {"label": "car", "shape_type": "rectangle", "points": [[2, 2], [8, 6]]}]}
        (lm / split / "a.json").write_text(json.dumps(doc))
    r = convert(lm, tmp_path / "from_labelme", "labelme", progress=False)
    assert r["splits"] == {"train": 1, "val": 1} and r["classes"] == ["car", "road"]
    mask = np.asarray(Image.open(tmp_path / "from_labelme" / "masks" / "val" / "a.png"))
    assert mask[4, 5] == 0 and mask[18, 15] == 1 and mask[0, 29] == 255
    assert check_folder(tmp_path / "from_labelme").ok
    assert main(["datasets", "convert", str(lm), "--from", "labelme", "--out", str(tmp_path / "from_labelme")]) == 2
