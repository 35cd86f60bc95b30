"""Carry a training that runs longer than a session from one session to the next.

    python tools/campaign.py save runs/enet_camvid_long       # end of a session
    python tools/campaign.py restore enet_camvid_long         # start of the next one
    rtseg train --config configs/enet_camvid_long.yaml --resume

``save`` copies the run's ``last.pt`` (weights, weight average, optimiser, schedule, RNG: what
``--resume`` needs), ``metrics.jsonl`` and ``config.yaml`` into ``bench/campaign/NAME/`` (the run
folders under ``runs/`` are git-ignored) and draws ``curve.png``: the training loss and the val
mIoU (for the campaign's recipes, the held-out sequence) per epoch. ``restore`` copies them back.

    python tools/campaign.py compare runs/A edanet_camvid_distill4_heldout    # A's scores beside another's

``compare`` writes a run's held-out series with other runs' at the same epochs in brackets, as the
tables of bench/campaign/README.md give them (``5: 46.5 (47.2)``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STORE = REPO / "bench" / "campaign"
FILES = ("last.pt", "metrics.jsonl", "config.yaml")
#: Larger resume states (PIDNet-S: 124 MB with its Adam moments) stay out of git.
MAX_TRACKED_MB = 50


def plot_curve(metrics: Path, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    fig, loss_ax = plt.subplots(figsize=(8, 4.5))
    loss_ax.plot([r["epoch"] for r in rows], [r["train_loss"] for r in rows], color="tab:gray", lw=1)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss", color="tab:gray")
    scored = [r for r in rows if "val_miou" in r]
    if scored:
        miou_ax = loss_ax.twinx()
        miou_ax.plot([r["epoch"] for r in scored], [100 * r["val_miou"] for r in scored], "o-", color="tab:blue")
        miou_ax.set_ylabel("val mIoU % (held-out sequence)", color="tab:blue")
    loss_ax.set_title(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def save(run_dir: Path) -> Path:
    dest = STORE / run_dir.name
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if not (run_dir / name).is_file():
            raise SystemExit(f"campaign save: {run_dir / name} is missing (has the run finished an epoch?)")
        shutil.copy2(run_dir / name, dest / name)
    plot_curve(dest / "metrics.jsonl", dest / "curve.png", run_dir.name)
    size_mb = (dest / "last.pt").stat().st_size / 2**20
    if size_mb > MAX_TRACKED_MB:
        print(f"campaign save: {dest / 'last.pt'} is {size_mb:.0f} MB, over the {MAX_TRACKED_MB} MB a repository file "
              "should hold: git-ignore it; a later session on another machine cannot resume from it", file=sys.stderr)
    return dest


def restore(name: str) -> Path:
    src, dest = STORE / name, REPO / "runs" / name
    if src.is_dir() and not (src / "last.pt").is_file():
        raise SystemExit(f"campaign restore: {name} is a finished stage whose last.pt left the tree; git history "
                         f"keeps it (bench/campaign/README.md names the commit: git show SHA:{src.relative_to(REPO)}"
                         "/last.pt)")
    if not (src / "last.pt").is_file():
        raise SystemExit(f"campaign restore: no saved campaign {src} (known: "
                         f"{', '.join(sorted(p.name for p in STORE.iterdir() if p.is_dir())) or 'none'})")
    dest.mkdir(parents=True, exist_ok=True)
    for n in FILES:
        shutil.copy2(src / n, dest / n)
    return dest


def _scores(where: str) -> dict[int, float]:
    """{epoch: val mIoU in %} of a run folder, a metrics.jsonl or a saved campaign's name."""
    path = Path(where)
    path = path if path.suffix == ".jsonl" else path / "metrics.jsonl" if path.is_dir() else STORE / where / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"campaign compare: no metrics.jsonl at {path}")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["epoch"]: 100 * r["val_miou"] for r in rows if "val_miou" in r}


def compare(run: str, others: list[str]) -> str:
    mine, theirs = _scores(run), [_scores(o) for o in others]
    parts = []
    for epoch, score in mine.items():
        known = [f"{t[epoch]:.1f}" if epoch in t else "-" for t in theirs]
        parts.append(f"{epoch}: {score:.1f}" + (f" ({' / '.join(known)})" if known else ""))
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("save", help="copy a run's resume state into bench/campaign/").add_argument("run_dir", type=Path)
    sub.add_parser("restore", help="copy a saved campaign back into runs/").add_argument("name")
    c = sub.add_parser("compare", help="a run's held-out series beside others' at the same epochs")
    c.add_argument("run", help="run folder, metrics.jsonl or saved campaign name")
    c.add_argument("others", nargs="*", help="the runs to put in brackets (the same forms)")
    args = parser.parse_args()
    if args.command == "compare":
        print(compare(args.run, args.others))
    else:
        print(save(args.run_dir) if args.command == "save" else restore(args.name))


if __name__ == "__main__":
    main()
