"""Copy a finished run's best checkpoint into the package as a shipped model.

    python tools/ship_model.py runs/enet_camvid enet_camvid "rtseg train --config configs/enet_camvid.yaml"

Writes rtseg/shipped/<name>.pt (the best checkpoint, without optimiser state), <name>_log.jsonl
(the run's per-epoch metrics) and <name>.md (the command, the recipe and the best epoch).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

from rtseg.checkpoint import load_checkpoint, save_checkpoint


def main(run_dir: str, name: str, command: str) -> None:
    run = Path(run_dir)
    out = Path(__file__).resolve().parents[1] / "rtseg" / "shipped"
    ckpt = load_checkpoint(run / "best.pt")
    ckpt.pop("path", None)
    ckpt["train_state"] = None
    save_checkpoint(ckpt, out / f"{name}.pt")
    shutil.copyfile(run / "metrics.jsonl", out / f"{name}_log.jsonl")
    lines = [json.loads(row) for row in (run / "metrics.jsonl").read_text().splitlines()]
    best = max((row for row in lines if "val_miou" in row), key=lambda row: row["val_miou"])
    size_mb = (out / f"{name}.pt").stat().st_size / 2**20
    (out / f"{name}.md").write_text(
        f"# {name}\n\nProduced by:\n\n```bash\n{command}\n```\n\nRecipe (as saved in the checkpoint):\n\n"
        f"```yaml\n{(run / 'config.yaml').read_text()}```\n\n"
        f"Best epoch {best['epoch']} of {len(lines)}: val mIoU {best['val_miou']:.4f}, pixel accuracy "
        f"{best['val_pixel_accuracy']:.4f}. Per-epoch log: `{name}_log.jsonl`. File size {size_mb:.2f} MB, "
        f"torch {torch.__version__}.\n")
    print(f"shipped {name}: epoch {best['epoch']}, val mIoU {best['val_miou']:.4f}, {size_mb:.2f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:4])
