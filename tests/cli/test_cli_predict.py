"""rtseg.cli.predict (rtseg predict): the summary, progress in a pipe, and --classes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import rtseg
from conftest import save_png
from rtseg.cli import main


def test_predict_prints_a_summary(enet_ckpt, tmp_path, capsys):
    save_png(tmp_path / "in" / "a.png", np.zeros((24, 32, 3), np.uint8))
    assert main(["predict", str(tmp_path / "in"), "--weights", str(enet_ckpt), "--out", str(tmp_path / "o")]) == 0
    assert "1 image(s)" in capsys.readouterr().out and (tmp_path / "o" / "a_labels.png").is_file()


def test_progress_in_a_pipe_is_plain_lines_and_an_error_has_its_own(enet_ckpt, tmp_path):
    folder = tmp_path / "frames"
    for i in range(8):
        save_png(folder / f"{i}.png", np.full((24, 32, 3), 20 * i, np.uint8))
    done = subprocess.run([sys.executable, "-m", "rtseg", "predict", str(folder), "--weights", str(enet_ckpt),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "\r" not in done.stderr and 2 <= len(lines) <= 6, lines
    assert lines[0].startswith("predict: 0/8") and lines[-1].startswith("predict: 8/8")
    (folder / "5.png").write_bytes(b"broken")
    done = subprocess.run([sys.executable, "-m", "rtseg", "predict", str(folder), "--weights", str(enet_ckpt),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("rtseg predict: error: cannot read image")


def test_predict_classes_writes_the_subset_legend(enet_ckpt, tmp_path):
    from PIL import Image

    from conftest import save_png
    from rtseg.cli import main

    save_png(tmp_path / "in" / "a.png", np.zeros((24, 32, 3), np.uint8))
    assert main(["predict", str(tmp_path / "in"), "--weights", str(enet_ckpt), "--out", str(tmp_path / "o"),
                 "--classes", "Pedestrian", "--backend", "torch"]) == 0
    key = np.asarray(Image.open(tmp_path / "o" / "legend.png").convert("RGB"))
    assert key.shape[0] == 8 + 16  # one row
    seg = rtseg.load_model(str(enet_ckpt), device="cpu")
    assert tuple(key[4 + 8, 12]) == tuple(seg.classes.palette[seg.class_names.index("Pedestrian")])
    labels = np.asarray(Image.open(tmp_path / "o" / "a_labels.png"))
    assert np.array_equal(labels, seg.predict(np.zeros((24, 32, 3), np.uint8)))  # every class kept
