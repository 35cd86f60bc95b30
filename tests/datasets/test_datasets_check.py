"""rtseg.datasets.check (rtseg datasets check): every problem of a folder dataset in one run, and
the exit status."""

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


def test_a_train_split_without_val_is_a_warning(tmp_path, capsys):
    import shutil

    root = _folder(tmp_path / "noval")
    shutil.rmtree(root / "images" / "val")
    shutil.rmtree(root / "masks" / "val")
    report = check_folder(root)
    assert report.ok and [str(p) for p in report.problems] == [
        f"warning: {root / 'images'}: no val split: training with the shipped recipes validates on val; make one "
        "(rtseg datasets convert --val-fraction) or set data.val_split"]
    assert main(["datasets", "check", str(root)]) == 0
    assert "0 error(s), 1 warning(s)" in capsys.readouterr().out
