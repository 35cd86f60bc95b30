"""docs/your-data.md, run: every ``rtseg`` command in its bash blocks, in order, on a small
flat Labelme export made here (one folder of JSONs, no split folders: the common case, which
convert splits into train and val), the training command with a few overrides to last seconds,
so the tutorial cannot drift from what rtseg does."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np

from conftest import random_image, save_png
from rtseg.cli import main

REPO = Path(__file__).resolve().parents[2]
#: Appended to the page's training command: one short epoch on tiny frames.
QUICK = ["schedule.epochs=1", "schedule.warmup_epochs=0", "data.crop=[16,24]", "data.batch_size=2",
         "data.val_batch_size=2", "run.progress=false", "run.image_summaries=0", "run.freeze_epochs=0",
         "run.val_every=1", "run.threads=2"]


def page_commands() -> list[list[str]]:
    text = (REPO / "docs" / "your-data.md").read_text(encoding="utf-8")
    blocks = [b.replace("\\\n", " ") for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]  # `\` continuations
    return [shlex.split(line)[1:] for block in blocks for line in block.splitlines() if line.startswith("rtseg ")]


def _labelme_export(root: Path, n: int = 10) -> None:
    """A flat export: n images and their JSONs in one folder, as Labelme leaves them."""
    rng = np.random.default_rng(0)
    for i in range(n):
        save_png(root / f"f{i}.png", random_image(rng, 24, 32))
        doc = {"imagePath": f"f{i}.png", "imageHeight": 24, "imageWidth": 32, "shapes": [
            {"label": "road", "shape_type": "polygon", "points": [[0, 23], [31, 23], [16, 12]]},
            {"label": "car", "shape_type": "rectangle", "points": [[2, 2], [10, 8]]},
            {"label": "person", "shape_type": "rectangle", "points": [[20, 2], [24, 10]]},
            {"label": "other", "shape_type": "rectangle", "points": [[12, 0], [18, 4]]}]}
        (root / f"f{i}.json").write_text(json.dumps(doc))


def test_the_page_runs(tmp_path, monkeypatch, capsys):
    commands = page_commands()
    assert [c[0] for c in commands] == ["datasets", "datasets", "train", "eval", "predict", "export"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "finetune_folder.yaml").write_text((REPO / "configs" / "finetune_folder.yaml").read_text())
    _labelme_export(tmp_path / "labelme_export")
    save_png(tmp_path / "photos" / "street.png", random_image(np.random.default_rng(1), 24, 32))
    for argv in commands:
        extra = QUICK if argv[0] == "train" else []
        assert main([*argv, *extra]) == 0, argv
    out = capsys.readouterr().out
    assert "no split folders in labelme_export: 9 frames to train, 1 to val (--val-fraction 0.1)" in out
    assert "4 classes (car, other, person, road)" in out and "0 error(s), 0 warning(s)" in out
    assert (tmp_path / "masks" / "legend.png").is_file() and (tmp_path / "mymodel.onnx").is_file()


def test_the_worked_examples_data_relabels_camvid_into_nested_splits(tmp_path, monkeypatch):
    import importlib.util

    from PIL import Image

    from conftest import write_camvid

    camvid = tmp_path / "data" / "camvid"
    write_camvid(camvid, splits=("train",), n=4)
    for p in (camvid / "train").glob("*.png"):  # two sequences: one held out
        for folder in ("train", "trainannot"):
            (camvid / folder / p.name).rename(camvid / folder / f"{'0006R0' if p.stem.endswith('0') else '0001TP'}_{p.name}")
    spec = importlib.util.spec_from_file_location("your_data_example", REPO / "tools" / "your_data_example.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setenv("RTSEG_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(example, "DATA", tmp_path / "camvid5")
    monkeypatch.setattr(example, "NS", (1, 2))
    example.make_data()
    from rtseg.datasets.folder import FolderDataset

    names = {s: sorted(p.name for p in (tmp_path / "camvid5" / "masks" / s).iterdir()) for s in ("n1", "n2", "heldout")}
    assert set(names["n1"]) <= set(names["n2"]) and all(n.startswith("0006R0") for n in names["heldout"])
    assert not set(names["n2"]) & set(names["heldout"]) and len(names["n2"]) == 2
    # Every CamVid id goes to its new class; void (11) to the ignore value.
    old = np.asarray(Image.open(camvid / "trainannot" / names["heldout"][0]))
    new = np.asarray(Image.open(tmp_path / "camvid5" / "masks" / "heldout" / names["heldout"][0]))
    expected = {3: 0, 4: 1, 8: 2, 9: 3, 10: 3, 0: 4, 1: 4, 2: 4, 5: 4, 6: 4, 7: 4, 11: 255}
    assert all((new[old == k] == v).all() for k, v in expected.items())
    ds = FolderDataset(tmp_path / "camvid5", "n2")
    assert ds.classes.names == ("road", "sidewalk", "vehicle", "person", "other") and len(ds) == 2
