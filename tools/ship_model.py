"""Copy a finished run's best checkpoint into the package as a shipped model.

    python tools/ship_model.py runs/enet_camvid enet_camvid "rtseg train --config configs/enet_camvid.yaml"
    python tools/ship_model.py runs/enet_camvid_long_fullres enet_camvid "..." --checkpoint last

Writes rtseg/shipped/<name>.pt (the run's best checkpoint, or its last with ``--checkpoint last``
for a run whose val split is inside its training data; without optimiser state), <name>_log.jsonl
(the run's per-epoch metrics) and <name>.md (the command, the recipe and the epoch shipped).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from rtseg.checkpoint import load_checkpoint, save_checkpoint


def main(run_dir: str, name: str, command: str, checkpoint: str = "best") -> None:
    run = Path(run_dir)
    out = Path(__file__).resolve().parents[1] / "rtseg" / "shipped"
    ckpt = load_checkpoint(run / f"{checkpoint}.pt")
    ckpt.pop("path", None)
    ckpt["train_state"] = None
    save_checkpoint(ckpt, out / f"{name}.pt")
    shutil.copyfile(run / "metrics.jsonl", out / f"{name}_log.jsonl")
    lines = [json.loads(row) for row in (run / "metrics.jsonl").read_text().splitlines()]
    scored = [row for row in lines if "val_miou" in row]
    shipped = max(scored, key=lambda row: row["val_miou"]) if checkpoint == "best" else scored[-1]
    which = "Best" if checkpoint == "best" else "Last"
    size_mb = (out / f"{name}.pt").stat().st_size / 2**20
    (out / f"{name}.md").write_text(
        f"# {name}\n\nProduced by:\n\n```bash\n{command}\n```\n\nRecipe (as saved in the checkpoint):\n\n"
        f"```yaml\n{(run / 'config.yaml').read_text()}```\n\n"
        f"{which} scored epoch {shipped['epoch']} of {len(lines)}: val mIoU {shipped['val_miou']:.4f}, pixel accuracy "
        f"{shipped['val_pixel_accuracy']:.4f}. Per-epoch log: `{name}_log.jsonl`. File size {size_mb:.2f} MB, "
        f"torch {torch.__version__}.\n")
    print(f"shipped {name} ({checkpoint}.pt): epoch {shipped['epoch']}, val mIoU {shipped['val_miou']:.4f}, "
          f"{size_mb:.2f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Copy a finished run's checkpoint into rtseg/shipped/.")
    parser.add_argument("run_dir")
    parser.add_argument("name", help="file name under rtseg/shipped/ (enet_camvid ships as enet-camvid)")
    parser.add_argument("command", help="the command that produced the run, for <name>.md")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    args = parser.parse_args()
    main(args.run_dir, args.name, args.command, args.checkpoint)
