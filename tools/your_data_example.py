"""The worked example of docs/your-data.md: how many labelled frames does a new label set need,
and what does starting from a trained ENet buy? Measured on real street frames.

    python tools/your_data_example.py data      # CamVid -> a 5-class folder dataset (never committed)
    python tools/your_data_example.py train     # 6 trainings: N = 20, 50, 100 x fine-tuned / scratch
    python tools/your_data_example.py plot      # docs/your_data_example.png + bench/your_data/results.json

(``make your-data-example`` runs the three, after ``make heldout-models``, which brings the start
below back from git history; ``train`` skips finished runs and resumes a stopped one.)

The new label set is road, sidewalk, vehicle, person and other (every other CamVid class; void
stays ignored). N frames are drawn at random (seed 0, nested: the 20 are among the 50, the 50
among the 100) from CamVid train without sequence 0006R0; every run is scored on all 101 frames
of 0006R0. "Fine-tuned" starts from ENet stage A of the campaign
(``runs/heldout/enet_camvid_long.pt`` from ``make heldout-models``: 600 epochs on CamVid train +
val without 0006R0, so it never saw the frames it is scored on), its classifier rows carried over
by the class map below; "scratch" runs the same recipe (``configs/finetune_folder.yaml``) from
random weights. Every run sees the same number of training images (IMAGES), so the same CPU
minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "runs" / "your_data" / "camvid5"
RUNS = REPO / "runs" / "your_data"
RESULTS = REPO / "bench" / "your_data" / "results.json"
PLOT = REPO / "docs" / "your_data_example.png"
#: ENet stage A, 0006R0 held out: ``make heldout-models`` writes it from git history.
TEACHER = REPO / "runs" / "heldout" / "enet_camvid_long.pt"
CONFIG = REPO / "configs" / "finetune_folder.yaml"

NS = (20, 50, 100)
IMAGES = 2400  # training images per run: 120 epochs of 20 frames, 48 of 50, 24 of 100
SCORES = 8     # held-out scorings per run
HELD_OUT = "0006R0"

# New class: the CamVid classes it merges (ids of rtseg.datasets.camvid; 11 = void -> ignored).
CLASSES = {
    "road": ["Road"],
    "sidewalk": ["Pavement"],
    "vehicle": ["Car"],
    "person": ["Pedestrian", "Bicyclist"],
    "other": ["Sky", "Building", "Pole", "Tree", "SignSymbol", "Fence"],
}
PALETTE = [[128, 64, 128], [244, 35, 232], [0, 0, 142], [220, 20, 60], [70, 70, 70]]


def _camvid() -> Path:
    root = Path(os.environ.get("RTSEG_DATA", "")) / "camvid"
    if not (root / "train").is_dir() or not (root / "trainannot").is_dir():
        sys.exit(f"your_data_example: no CamVid at {root} (expected train/ and trainannot/): set RTSEG_DATA")
    return root


def _lut() -> np.ndarray:
    from rtseg.datasets.camvid import CLASSES as CAMVID

    lut = np.full(256, 255, np.uint8)
    for new, olds in enumerate(CLASSES.values()):
        for old in olds:
            lut[CAMVID.names.index(old)] = new
    return lut


def make_data() -> None:
    """CamVid's frames and masks relabelled into DATA/{images,masks}/{n20,n50,n100,heldout}."""
    from rtseg.io import atomic_write_text

    root, lut = _camvid(), _lut()
    frames = sorted(p.name for p in (root / "train").glob("*.png"))
    pool = [f for f in frames if not f.startswith(HELD_OUT)]
    held = [f for f in frames if f.startswith(HELD_OUT)]
    random.Random(0).shuffle(pool)
    splits = {f"n{n}": pool[:n] for n in NS} | {"heldout": held}
    for split, names in splits.items():
        (DATA / "images" / split).mkdir(parents=True, exist_ok=True)
        (DATA / "masks" / split).mkdir(parents=True, exist_ok=True)
        for name in names:
            image = DATA / "images" / split / name
            if not image.exists():
                image.write_bytes((root / "train" / name).read_bytes())
            mask = np.asarray(Image.open(root / "trainannot" / name))
            Image.fromarray(lut[mask]).save(DATA / "masks" / split / name)
    spec = {"classes": list(CLASSES), "palette": PALETTE, "ignore_index": 255}
    atomic_write_text(DATA / "dataset.yaml", json.dumps(spec) + "\n")  # JSON is YAML
    print(f"{DATA}: " + ", ".join(f"{k} {len(v)} frames" for k, v in splits.items()))


def _run_dir(arm: str, n: int) -> Path:
    return RUNS / f"{arm}_n{n}"


def _rows(run: Path) -> list[dict]:
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        return []
    return [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]


def train_all() -> None:
    from rtseg.engine.train import train

    if not (DATA / "dataset.yaml").is_file():
        sys.exit(f"your_data_example: no example dataset at {DATA}: run `python {Path(__file__).name} data` first")
    if not TEACHER.is_file():
        sys.exit(f"your_data_example: no {TEACHER.relative_to(REPO)} to fine-tune from: run `make heldout-models`")
    class_map = "{" + ", ".join(f"{k}: [{', '.join(v)}]" for k, v in CLASSES.items()) + "}"
    for n in NS:
        for arm in ("finetune", "scratch"):
            run, epochs = _run_dir(arm, n), IMAGES // n
            rows = _rows(run)
            if rows and rows[-1]["epoch"] >= epochs:
                print(f"{run.name}: done ({epochs} epochs)")
                continue
            overrides = [f"data.data_root={DATA}", f"data.train_split=n{n}", "data.val_split=heldout",
                         f"schedule.epochs={epochs}", f"run.val_every={epochs // SCORES}", f"run.out_dir={run}",
                         "run.threads=2", "run.progress=false", "run.image_summaries=0"]
            if arm == "finetune":
                overrides.append(f"model.init_class_map={class_map}")
            else:
                overrides.append("run.freeze_epochs=0")  # nothing trained to protect
            resume = (run / "last.pt").is_file()
            print(f"{run.name}: {epochs} epochs of {n} frames" + (" (resuming)" if resume else ""), flush=True)
            train(str(CONFIG), overrides, resume=resume,
                  init_from=str(TEACHER) if arm == "finetune" and not resume else None)


def plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rtseg.io import atomic_path, atomic_write_text
    from rtseg.runtime import cpu_flags

    results, curves = {}, {}
    for arm in ("finetune", "scratch"):
        for n in NS:
            rows = _rows(_run_dir(arm, n))
            if not rows or rows[-1]["epoch"] < IMAGES // n:
                sys.exit(f"your_data_example: {_run_dir(arm, n)} has not finished: run `train` first")
            minutes, points = 0.0, [(0.0, None)]
            for r in rows:
                minutes += r["train_seconds"] / 60
                if "val_miou" in r:
                    points.append((minutes, 100 * r["val_miou"]))
            curves[arm, n] = points[1:]
            results[f"{arm}_n{n}"] = {"frames": n, "epochs": rows[-1]["epoch"], "train_minutes": round(minutes, 1),
                                      "heldout_miou_last": round(100 * rows[-1]["val_miou"], 2),
                                      "heldout_miou_curve": [[round(m, 2), round(v, 2)] for m, v in points[1:]]}
    fig, (by_n, by_min) = plt.subplots(1, 2, figsize=(11, 4.2))
    style = {"finetune": ("tab:blue", "fine-tuned from ENet (CamVid, 0006R0 unseen)"),
             "scratch": ("tab:gray", "from scratch, same recipe and minutes")}
    for arm, (colour, label) in style.items():
        by_n.plot(NS, [results[f"{arm}_n{n}"]["heldout_miou_last"] for n in NS], "o-", color=colour, label=label)
        for n, ls in zip(NS, (":", "--", "-")):
            xs, ys = zip(*curves[arm, n])
            by_min.plot(xs, ys, ls, color=colour, label=f"{arm}, {n} frames")
    by_n.set(xlabel="labelled frames", ylabel="mIoU on 0006R0 (5 classes), %", xticks=NS,
             title=f"After the same training ({IMAGES} images)")
    by_min.set(xlabel="training minutes (2 CPU cores)", ylabel="mIoU on 0006R0, %", title="During training")
    by_n.legend(fontsize=8)
    by_min.legend(fontsize=7, ncol=2)
    for ax in (by_n, by_min):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(PLOT) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    flags = sorted(f for f, present in cpu_flags().items() if present)
    out = {"what": "5-class CamVid (road, sidewalk, vehicle, person, other): N frames of train without 0006R0, "
                   "scored on all 101 frames of 0006R0; trained here from scratch or from ENet stage A "
                   "(bench/campaign/enet_camvid_long, which never saw 0006R0)",
           "command": "make your-data-example", "images_per_run": IMAGES, "cpu_flags": flags, "runs": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(out, indent=2) + "\n")
    for name, r in results.items():
        print(f"{name:<14} {r['heldout_miou_last']:5.1f} mIoU after {r['train_minutes']:.1f} min")
    print(f"-> {PLOT.relative_to(REPO)}, {RESULTS.relative_to(REPO)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["data", "train", "plot"])
    step = p.parse_args().step
    {"data": make_data, "train": train_all, "plot": plot}[step]()


if __name__ == "__main__":
    main()
