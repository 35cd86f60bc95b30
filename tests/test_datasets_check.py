"""rtseg datasets check: every problem of a folder dataset in one run, and the exit status."""

from __future__ import annotations

import numpy as np

from conftest import random_image, save_png
from rtseg.cli import main
from rtseg.datasets.check import check_folder


def _folder(root, n=3):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(n):
            save_png(root / "images" / split / f"{split}{i}.png", random_image(rng, 12, 16))
            save_png(root / "masks" / split / f"{split}{i}.png", rng.integers(0, 3, (12, 16), dtype=np.uint8), mode="L")
    (root / "dataset.yaml").write_text("classes: [road, car, other]\npalette: [[1, 1, 1], [2, 2, 2], [3, 3, 3]]\n")
    return root


def test_a_clean_folder_passes_with_its_histogram(tmp_path, capsys):
    root = _folder(tmp_path / "ok")
    report = check_folder(root)
    assert report.ok and report.splits == {"train": 3, "val": 3} and not report.problems
    assert sum(report.histogram["train"]) == 3 * 12 * 16
    assert main(["datasets", "check", str(root)]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_every_problem_is_reported_in_one_run(tmp_path, capsys):
    root = _folder(tmp_path / "bad")
    rng = np.random.default_rng(1)
    (root / "masks" / "train" / "train0.png").unlink()                                   # image without mask
    save_png(root / "masks" / "train" / "orphan.png", np.zeros((12, 16), np.uint8), mode="L")  # mask without image
    save_png(root / "masks" / "train" / "train1.png", np.zeros((10, 16), np.uint8), mode="L")  # size mismatch
    save_png(root / "masks" / "train" / "train2.png", random_image(rng, 12, 16))          # an RGB mask
    save_png(root / "masks" / "val" / "val0.png", np.full((12, 16), 7, np.uint8), mode="L")  # id outside the table
    (root / "images" / "val" / "val1.png").write_bytes(b"")                              # empty file
    (root / "images" / "val" / "val2.png").write_bytes((root / "images" / "train" / "train0.png").read_bytes())
    report = check_folder(root)
    text = "\n".join(str(p) for p in report.problems)
    for expected in ("train0.png: an image without its mask", "orphan.png: a mask without an image",
                     "train1.png: 16x10 but its image is 16x12", "train2.png: mode RGB: expected a single-channel",
                     "val0.png: ids [7] outside the class table", "val1.png: the file is empty",
                     "val2.png: the same image as", "never occurs in split 'train'"):
        assert expected in text, expected
    assert not report.ok
    assert main(["datasets", "check", str(root), "--json", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert "6 error(s)" in out and "fix the errors before training" in out
    assert main(["datasets", "check", str(tmp_path / "nowhere")]) == 1


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
