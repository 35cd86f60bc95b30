"""Copy a finished run's best checkpoint into the package as a shipped model.

    python tools/ship_model.py runs/enet_camvid enet_camvid "rtseg train --config configs/enet_camvid.yaml"
    python tools/ship_model.py runs/enet_camvid_long_fullres enet_camvid "..." --checkpoint last

Writes rtseg/shipped/<name>.pt (the run's best checkpoint, or its last with ``--checkpoint last``
for a run whose val split is inside its training data; without optimiser state) and
bench/campaign/logs/<name>_log.jsonl (the run's per-epoch metrics), and prints a recipe section
(the command, the recipe, the epoch shipped) for docs/reproducing.md. The model card,
rtseg/shipped/<name>.md, is written by hand and is left alone: its test figures come from the
project's benchmark (bench/camvid_test.json; pictures: ``python tools/model_cards.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from rtseg.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "rtseg" / "shipped"
LOGS = ROOT / "bench" / "campaign" / "logs"


def recipe_section(name: str, command: str, config: str, shipped: dict, epochs: int, which: str,
                   size_mb: float) -> str:
    """The markdown section of docs/reproducing.md for this shipped model."""
    return (f"## `{name.replace('_', '-')}`\n\nProduced by:\n\n```bash\n{command}\n```\n\n"
            f"Recipe (as saved in the checkpoint):\n\n```yaml\n{config}```\n\n"
            f"{which} scored epoch {shipped['epoch']} of {epochs}: val mIoU {shipped['val_miou']:.4f}, pixel accuracy "
            f"{shipped['val_pixel_accuracy']:.4f}. Per-epoch log: `bench/campaign/logs/{name}_log.jsonl`. "
            f"File size {size_mb:.2f} MB, torch {torch.__version__}.\n")


def main(run_dir: str, name: str, command: str, checkpoint: str = "best") -> str:
    run = Path(run_dir)
    ckpt = load_checkpoint(run / f"{checkpoint}.pt")
    ckpt.pop("path", None)
    ckpt["train_state"] = None
    save_checkpoint(ckpt, SHIPPED / f"{name}.pt")
    LOGS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "metrics.jsonl", LOGS / f"{name}_log.jsonl")
    lines = [json.loads(row) for row in (run / "metrics.jsonl").read_text().splitlines()]
    scored = [row for row in lines if "val_miou" in row]
    shipped = max(scored, key=lambda row: row["val_miou"]) if checkpoint == "best" else scored[-1]
    which = "Best" if checkpoint == "best" else "Last"
    size_mb = (SHIPPED / f"{name}.pt").stat().st_size / 2**20
    section = recipe_section(name, command, (run / "config.yaml").read_text(), shipped, len(lines), which, size_mb)
    print(f"shipped {name} ({checkpoint}.pt): epoch {shipped['epoch']}, val mIoU {shipped['val_miou']:.4f}, "
          f"{size_mb:.2f} MB; log: {(LOGS / f'{name}_log.jsonl').relative_to(ROOT)}")
    print(f"\n--- the recipe section for docs/reproducing.md ---\n\n{section}")
    return section


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Copy a finished run's checkpoint into rtseg/shipped/.")
    parser.add_argument("run_dir")
    parser.add_argument("name", help="file name under rtseg/shipped/ (enet_camvid ships as enet-camvid)")
    parser.add_argument("command", help="the command that produced the run, for the printed recipe section")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    args = parser.parse_args()
    main(args.run_dir, args.name, args.command, args.checkpoint)
