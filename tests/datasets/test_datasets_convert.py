"""rtseg.datasets.convert (rtseg datasets convert): colour masks and Labelme exports become a
folder dataset that checks clean."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import random_image, save_png
from rtseg.cli import main
from rtseg.datasets.check import check_folder


def test_colour_masks_and_labelme_convert_to_a_dataset_that_checks_clean(tmp_path):
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
    r = convert(cvat, tmp_path / "from_cvat", "colour", progress=False, val_fraction=0)  # all in train
    assert r["splits"] == {"train": 2} and r["classes"] == ["road", "car"] and r["flat"]
    mask = np.asarray(Image.open(tmp_path / "from_cvat" / "masks" / "train" / "f0.png"))
    assert (mask == np.where(ids == 2, 255, ids)).all()
    assert not check_folder(tmp_path / "from_cvat").errors
    # A colour in no class: an error naming the file and the colour, and nothing written.
    rgb[0, 0] = (1, 2, 3)
    save_png(cvat / "SegmentationClass" / "f1.png", rgb)
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
    assert r["splits"] == {"train": 1, "val": 1} and r["classes"] == ["car", "road"] and not r["flat"]
    mask = np.asarray(Image.open(tmp_path / "from_labelme" / "masks" / "val" / "a.png"))
    assert mask[4, 5] == 0 and mask[18, 15] == 1 and mask[0, 29] == 255
    assert check_folder(tmp_path / "from_labelme").ok
    assert main(["datasets", "convert", str(lm), "--from", "labelme", "--out", str(tmp_path / "from_labelme")]) == 2


def _flat_labelme(root, n):
    """A flat Labelme export: n images and their JSONs in one folder, no split subfolders."""
    rng = np.random.default_rng(0)
    for i in range(n):
        save_png(root / f"frame{i:03d}.png", random_image(rng, 8, 10))
        doc = {"imagePath": f"frame{i:03d}.png", "imageHeight": 8, "imageWidth": 10, "shapes": [
            {"label": "road", "shape_type": "rectangle", "points": [[0, 4], [9, 7]]},
            {"label": "car", "shape_type": "rectangle", "points": [[0, 0], [4, 3]]}]}
        (root / f"frame{i:03d}.json").write_text(json.dumps(doc))
    return root


def _names(root, split):
    return sorted(p.name for p in (root / "images" / split).iterdir())


def test_val_count():
    from rtseg.datasets.convert import val_count

    # round(N * F), at least one of two or more frames, never all, none of one frame or at F = 0
    for n, f, k in ((50, 0.1, 5), (20, 0.1, 2), (6, 0.1, 1), (2, 0.1, 1), (1, 0.1, 0), (0, 0.1, 0),
                    (10, 0, 0), (2, 0.9, 1), (7, 0.5, 4), (200, 0.25, 50)):
        assert val_count(n, f) == k, (n, f)


def test_flat_sources_get_a_val_split_the_same_on_every_run(tmp_path, capsys):
    from rtseg.datasets.convert import convert

    # Labelme: a flat folder of JSONs, through the CLI with the default fraction.
    lm = _flat_labelme(tmp_path / "labelme", 20)
    for out in ("a", "b"):
        assert main(["datasets", "convert", str(lm), "--from", "labelme", "--out", str(tmp_path / out)]) == 0
    out = capsys.readouterr().out
    assert f"no split folders in {lm}: 18 frames to train, 2 to val (--val-fraction 0.1)" in out
    assert len(_names(tmp_path / "a", "val")) == 2 and len(_names(tmp_path / "a", "train")) == 18
    for split in ("train", "val"):
        assert _names(tmp_path / "a", split) == _names(tmp_path / "b", split)
        masks = sorted(p.name for p in (tmp_path / "a" / "masks" / split).iterdir())
        assert masks == _names(tmp_path / "a", split)
    report = check_folder(tmp_path / "a")
    assert report.ok and not report.problems and report.splits == {"train": 18, "val": 2}

    # Colour masks: images/ + masks/ without split folders, and CVAT's JPEGImages/ + SegmentationClass/.
    rng = np.random.default_rng(1)
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:3] = (128, 64, 128)
    rgb[3:] = (0, 0, 142)
    plain, cvat = tmp_path / "plain", tmp_path / "cvat"
    for i in range(10):
        save_png(plain / "images" / f"im{i}.png", random_image(rng, 6, 8))
        save_png(plain / "masks" / f"im{i}.png", rgb)
        save_png(cvat / "JPEGImages" / f"im{i}.png", random_image(rng, 6, 8))
        save_png(cvat / "SegmentationClass" / f"im{i}.png", rgb)
    (plain / "dataset.yaml").write_text("classes: [road, car]\npalette: [[128, 64, 128], [0, 0, 142]]\n")
    (cvat / "labelmap.txt").write_text("background:0,0,0::\nroad:128,64,128::\ncar:0,0,142::\n")
    for source in (plain, cvat):
        runs = [convert(source, tmp_path / f"{source.name}{i}", "colour", progress=False, val_fraction=0.3)
                for i in range(2)]
        assert all(r["splits"] == {"train": 7, "val": 3} and r["flat"] for r in runs)
        for split in ("train", "val"):
            assert _names(tmp_path / f"{source.name}0", split) == _names(tmp_path / f"{source.name}1", split)
        assert not set(_names(tmp_path / f"{source.name}0", "train")) & set(_names(tmp_path / f"{source.name}0", "val"))
        assert check_folder(tmp_path / f"{source.name}0").ok


def test_split_folders_are_kept_and_val_fraction_zero_keeps_all_in_train(tmp_path, capsys):
    from rtseg.datasets.convert import convert

    lm = tmp_path / "labelme"
    _flat_labelme(lm / "train", 4)
    _flat_labelme(lm / "val", 2)
    assert main(["datasets", "convert", str(lm), "--from", "labelme", "--out", str(tmp_path / "kept"),
                 "--val-fraction", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "kept as they are: --val-fraction unused" in out and "no split folders" not in out
    assert len(_names(tmp_path / "kept", "train")) == 4 and len(_names(tmp_path / "kept", "val")) == 2
    # A flat export at --val-fraction 0: all in train, and check warns that there is no val split.
    r = convert(lm / "train", tmp_path / "all_train", "labelme", progress=False, val_fraction=0)
    assert r["splits"] == {"train": 4} and r["flat"] and not (tmp_path / "all_train" / "images" / "val").exists()
    # One frame: nothing to split off.
    single = _flat_labelme(tmp_path / "single", 1)
    assert convert(single, tmp_path / "one", "labelme", progress=False)["splits"] == {"train": 1}


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1", "nan", "ten"])
def test_a_bad_val_fraction_is_refused_in_one_line_and_writes_nothing(tmp_path, capsys, value):
    from rtseg.datasets.convert import convert
    from rtseg.errors import DatasetError

    lm = _flat_labelme(tmp_path / "labelme", 3)
    assert main(["datasets", "convert", str(lm), "--from", "labelme", "--out", str(tmp_path / "out"),
                 "--val-fraction", value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--val-fraction {value}:" in err, err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    with pytest.raises(DatasetError, match="--val-fraction"):
        convert(lm, tmp_path / "out", "labelme", progress=False, val_fraction=value)
